// kafkajs idempotent producer against one `fjord dev` node.
import assert from 'node:assert/strict';
import { after, before, test as nodeTest } from 'node:test';
import { CompressionTypes } from 'kafkajs';
import { kafkaFor, uniqueName, useFjordNode, waitFor } from '../harness.mjs';

const { node, test } = useFjordNode('producer', { before, after, test: nodeTest });

/** Reads `n` messages of `topic` from the beginning (a throwaway group) as {partition: [...]}. */
async function readAll(kafka, topic, n) {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 500 });
  const got = {};
  let count = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        (got[partition] ??= []).push(message);
        count++;
      },
    });
    await waitFor(`${n} messages of ${topic}`, () => count >= n);
  } finally {
    await consumer.disconnect();
  }
  assert.equal(count, n, 'no more messages than produced');
  return got;
}

for (const [name, compression] of [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
]) {
  test(`idempotent producer, acks=all, compression ${name}: offsets in order, messages read back`, async () => {
    const kafka = kafkaFor(node());
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await Promise.all([admin.connect(), producer.connect()]);
    try {
      const topic = uniqueName('produce');
      await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });

      // Two sends of 10 messages per partition: offsets continue across sends.
      const perSend = 10;
      for (let round = 0; round < 2; round++) {
        const messages = [];
        for (const partition of [0, 1]) {
          for (let i = 0; i < perSend; i++) {
            const n = round * perSend + i;
            messages.push({ partition, key: `key-${n}`, value: `p${partition}-value-${n}`, headers: { n: String(n) } });
          }
        }
        const meta = await producer.send({ topic, acks: -1, compression, messages });
        const base = Object.fromEntries(meta.map((m) => [m.partition, [m.errorCode, m.baseOffset]]));
        assert.deepEqual(base, { 0: [0, String(round * perSend)], 1: [0, String(round * perSend)] }, `send ${round}`);
      }

      const got = await readAll(kafka, topic, 4 * perSend);
      for (const partition of [0, 1]) {
        const ms = got[partition] ?? [];
        assert.equal(ms.length, 2 * perSend, `partition ${partition} message count`);
        ms.forEach((m, i) => {
          assert.equal(m.offset, String(i), `partition ${partition} message ${i} offset`);
          assert.equal(m.key.toString(), `key-${i}`);
          assert.equal(m.value.toString(), `p${partition}-value-${i}`);
          assert.equal(m.headers.n.toString(), String(i));
        });
      }
      const offsets = await admin.fetchTopicOffsets(topic);
      assert.deepEqual(offsets.map((p) => p.high).sort(), [String(2 * perSend), String(2 * perSend)]);
    } finally {
      await Promise.all([producer.disconnect(), admin.disconnect()]);
    }
  });
}
