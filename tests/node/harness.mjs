// Starts a real `fjord dev` process for the kafkajs tests.
//
// The node binds its Kafka listener on port 0; the harness reads the bound port back from the
// "fjord node ready" log line, then waits until a raw Metadata request lists a broker. Each
// started node's pid goes to $FJORD_NODE_PID_DIR (when set) so that tests/node/run can kill a
// node whose test process died without stopping it.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

/** $FJORD_BIN, else $CARGO_TARGET_DIR/debug/fjord, else ~/.cache/fjord/target/debug/fjord. */
export function fjordBinary() {
  const candidates = process.env.FJORD_BIN
    ? [process.env.FJORD_BIN]
    : [
        ...(process.env.CARGO_TARGET_DIR ? [path.join(process.env.CARGO_TARGET_DIR, 'debug', 'fjord')] : []),
        path.join(os.homedir(), '.cache', 'fjord', 'target', 'debug', 'fjord'),
      ];
  const found = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  if (!found) {
    throw new Error(
      `fjord binary not found (tried ${candidates.join(', ')}); build it with \`cargo build --bins\` or set FJORD_BIN`,
    );
  }
  return found;
}

/** A topic or group name unique to this run: node-PREFIX-<random>. */
export function uniqueName(prefix) {
  return `node-${prefix}-${randomBytes(5).toString('hex')}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class FjordNode {
  constructor(name) {
    this.name = name;
    const logDir = process.env.FJORD_E2E_LOG_DIR || path.join(os.tmpdir(), 'fjord-e2e-logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.logPath = path.join(logDir, `node-${name}-${process.pid}-${randomBytes(3).toString('hex')}.log`);
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `fjord-node-${name}-`));
    this.bootstrap = null;
    this.exit = null; // {code, signal} once the process ended
  }

  /** Starts `fjord dev` on port 0 and resolves once it answers Metadata. */
  async start() {
    const bin = fjordBinary();
    const log = fs.openSync(this.logPath, 'a');
    this.proc = spawn(
      bin,
      ['dev', '--data-dir', path.join(this.dataDir, 'data'), '--kafka-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0'],
      { stdio: ['ignore', log, log], env: { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '1' } },
    );
    fs.closeSync(log); // the child has its own descriptor
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
    });
    if (process.env.FJORD_NODE_PID_DIR) {
      fs.writeFileSync(path.join(process.env.FJORD_NODE_PID_DIR, `${this.proc.pid}.pid`), `${this.proc.pid}\n`);
    }
    // If this test process ends without stop() (an uncaught error), take the node with it.
    this.onExit = () => this.proc.kill('SIGKILL');
    process.on('exit', this.onExit);
    try {
      await this.waitReady();
    } catch (err) {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new Error(`${err.message}\n${this.tail(60)}`);
    }
    return this;
  }

  async waitReady() {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const ready = /fjord node ready.*kafka_listeners=\S*?PLAINTEXT:\/\/([0-9.]+:[0-9]+)/;
    let last = 'no "fjord node ready" line with a PLAINTEXT listener';
    while (true) {
      if (this.exit) throw new Error(`fjord exited during startup (${JSON.stringify(this.exit)})`);
      if (!this.bootstrap) {
        const m = ready.exec(this.log());
        if (m) this.bootstrap = m[1];
      }
      if (this.bootstrap) {
        try {
          const brokers = await metadataBrokerCount(this.bootstrap);
          if (brokers > 0) return;
          last = 'Metadata lists no broker';
        } catch (err) {
          last = `Metadata on ${this.bootstrap}: ${err.message}`;
        }
      }
      if (Date.now() > deadline) throw new Error(`fjord not ready within ${START_TIMEOUT_MS} ms (${last})`);
      await sleep(50);
    }
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  tail(lines = 60) {
    const all = this.log().trimEnd().split('\n').slice(-lines);
    return `--- ${this.logPath} (last ${all.length} lines) ---\n${all.join('\n')}`;
  }

  /**
   * SIGTERM (SIGKILL after STOP_TIMEOUT_MS), then removes the data. Throws when the node had
   * exited on its own before, did not stop in time, or its log shows a panic.
   */
  async stop() {
    const problems = [];
    if (this.exit) {
      problems.push(`fjord exited on its own before the end (${JSON.stringify(this.exit)})`);
    } else {
      this.proc.kill('SIGTERM');
      let timer;
      const timedOut = new Promise((resolve) => {
        timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
      });
      const stopped = await Promise.race([this.exited.then(() => true), timedOut]);
      clearTimeout(timer); // a pending timer would keep this test process alive
      if (!stopped) {
        this.proc.kill('SIGKILL');
        await this.exited;
        problems.push(`fjord did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
      }
    }
    process.off('exit', this.onExit);
    if (process.env.FJORD_NODE_PID_DIR) {
      fs.rmSync(path.join(process.env.FJORD_NODE_PID_DIR, `${this.proc.pid}.pid`), { force: true });
    }
    const log = this.log();
    const marker = ['panicked', 'memory allocation of', 'fatal runtime error'].find((m) => log.includes(m));
    if (marker) {
      const start = log.lastIndexOf('\n', log.indexOf(marker)) + 1;
      problems.push(`node log shows a panic or abort:\n${log.slice(start, start + 3000)}`);
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    if (problems.length) throw new Error(`${problems.join('\n')}\n${this.tail(40)}`);
  }
}

/**
 * Sends a Metadata v0 request (all topics) and resolves to the number of brokers listed.
 * Client-independent on purpose: the harness should not depend on the client under test.
 */
export function metadataBrokerCount(addr, timeoutMs = 2000) {
  const [host, port] = addr.split(':');
  const clientId = Buffer.from('fjord-node-harness');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4);
  let o = body.writeInt16BE(3, 0); // api key: Metadata
  o = body.writeInt16BE(0, o); // version 0
  o = body.writeInt32BE(1, o); // correlation id
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  body.writeInt32BE(0, o); // topics: empty array = all
  const frame = Buffer.alloc(4);
  frame.writeInt32BE(body.length);

  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port: Number(port) });
    let buf = Buffer.alloc(0);
    const done = (err, value) => {
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    sock.setTimeout(timeoutMs, () => done(new Error('timed out')));
    sock.on('error', (err) => done(err));
    sock.on('connect', () => sock.write(Buffer.concat([frame, body])));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const size = buf.readInt32BE(0);
      if (buf.length < 4 + size) return;
      if (size < 8) return done(new Error(`short Metadata response (${size} bytes)`));
      const corr = buf.readInt32BE(4);
      if (corr !== 1) return done(new Error(`correlation id ${corr}, want 1`));
      done(null, buf.readInt32BE(8));
    });
    sock.on('end', () => done(new Error('connection closed')));
  });
}

/** A kafkajs client for the node; kafkajs's own log only with FJORD_NODE_KAFKAJS_LOG=1. */
export function kafkaFor(node, clientId = 'fjord-node-kafkajs') {
  return new Kafka({
    clientId,
    brokers: [node.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100 },
    logLevel: process.env.FJORD_NODE_KAFKAJS_LOG ? logLevel.DEBUG : logLevel.NOTHING,
  });
}

/** Polls `check` (async, truthy when done) every 100 ms until `timeoutMs`. */
export async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * One node per test file: call at the file's top level with node:test's `before`, `after`
 * and `test`. Returns `node()` (the running node) and `test(title, fn)`, a bounded test whose
 * failure message ends with the node's log tail.
 */
export function useFjordNode(name, hooks, { timeoutMs = 90_000 } = {}) {
  let node;
  hooks.before(async () => {
    // FJORD_TEST_BOOTSTRAP=HOST:PORT: no node is started; the tests run against that broker
    // (e.g. Apache Kafka from scripts/kafka, to check what Kafka answers where Fjord differs).
    if (process.env.FJORD_TEST_BOOTSTRAP) {
      node = { bootstrap: process.env.FJORD_TEST_BOOTSTRAP, tail: () => '(external broker: no node log)' };
      console.log(`harness: external broker ${node.bootstrap} (FJORD_TEST_BOOTSTRAP)`);
      return;
    }
    node = await new FjordNode(name).start();
    console.log(`harness: fjord dev on ${node.bootstrap}, log ${node.logPath}`);
  });
  hooks.after(async () => {
    if (node instanceof FjordNode) await node.stop();
  });
  const test = (title, fn) =>
    hooks.test(title, { timeout: timeoutMs }, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        if (node && err instanceof Error) err.message += `\n${node.tail(80)}`;
        throw err;
      }
    });
  return { node: () => node, test };
}
