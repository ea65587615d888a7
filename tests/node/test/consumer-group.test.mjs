// kafkajs consumer groups against one `fjord dev` node: commit, then resume in a new consumer.
import assert from 'node:assert/strict';
import { after, before, test as nodeTest } from 'node:test';
import { kafkaFor, uniqueName, useFjordNode, waitFor } from '../harness.mjs';

const { node, test } = useFjordNode('group', { before, after, test: nodeTest });

/** The group's committed offsets for topic as {partition: offset} (strings, as kafkajs gives). */
async function committed(admin, groupId, topic) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return Object.fromEntries(entry.partitions.map((p) => [p.partition, p.offset]));
}

/** A consumer of `groupId` that collects messages per partition. */
async function startConsumer(kafka, groupId, topic, runOptions) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 });
  const got = { 0: [], 1: [] };
  let count = 0;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    ...runOptions,
    eachMessage: async ({ partition, message }) => {
      got[partition].push(message);
      count++;
    },
  });
  return { consumer, got, count: () => count };
}

test('a consumer commits part of what it read; a new consumer in the group resumes after it', async () => {
  const kafka = kafkaFor(node());
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  const perPartition = 10;
  const commitAt = 6;
  try {
    const topic = uniqueName('group');
    const groupId = uniqueName('group');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });
    const messages = [];
    for (const partition of [0, 1]) {
      for (let i = 0; i < perPartition; i++) messages.push({ partition, value: `p${partition}-${i}` });
    }
    await producer.send({ topic, acks: -1, messages });

    // First consumer: no auto commit; reads everything, commits offset 6 on both partitions.
    const first = await startConsumer(kafka, groupId, topic, { autoCommit: false });
    try {
      await waitFor('the first consumer to read every message', () => first.count() >= 2 * perPartition);
      for (const p of [0, 1]) {
        assert.deepEqual(first.got[p].map((m) => m.offset), [...Array(perPartition).keys()].map(String));
      }
      await first.consumer.commitOffsets([0, 1].map((partition) => ({ topic, partition, offset: String(commitAt) })));
      assert.deepEqual(await committed(admin, groupId, topic), { 0: String(commitAt), 1: String(commitAt) });

      const [group] = (await admin.describeGroups([groupId])).groups;
      assert.equal(group.errorCode, 0);
      assert.equal(group.state, 'Stable');
      assert.equal(group.protocolType, 'consumer');
      assert.equal(group.members.length, 1);
    } finally {
      await first.consumer.disconnect(); // leaves the group
    }

    // Second consumer, same group, auto commit: starts at the committed offset 6 and commits
    // the rest itself.
    const second = await startConsumer(kafka, groupId, topic, { autoCommit: true });
    try {
      await waitFor('the second consumer to read the uncommitted messages', () =>
        second.count() >= 2 * (perPartition - commitAt),
      );
      for (const p of [0, 1]) {
        assert.deepEqual(
          second.got[p].map((m) => m.offset),
          [...Array(perPartition - commitAt).keys()].map((i) => String(commitAt + i)),
          `second consumer, partition ${p}`,
        );
      }
      await waitFor('the auto commit of offset 10', async () => {
        const c = await committed(admin, groupId, topic);
        return c[0] === String(perPartition) && c[1] === String(perPartition);
      });
    } finally {
      await second.consumer.disconnect();
    }
    assert.equal(second.count(), 2 * (perPartition - commitAt), 'no message read twice by the second consumer');
  } finally {
    await Promise.all([producer.disconnect(), admin.disconnect()]);
  }
});
