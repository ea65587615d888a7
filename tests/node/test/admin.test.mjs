// kafkajs admin against one `fjord dev` node: create topics, metadata, list offsets.
import assert from 'node:assert/strict';
import { after, before, test as nodeTest } from 'node:test';
import { kafkaFor, uniqueName, useFjordNode } from '../harness.mjs';

const { node, test } = useFjordNode('admin', { before, after, test: nodeTest });

test('admin creates a topic; a second create reports it exists', async () => {
  const admin = kafkaFor(node()).admin();
  await admin.connect();
  try {
    const topic = uniqueName('create');
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    assert.equal(created, true, 'createTopics answers true for a new topic');

    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(topics.length, 1);
    assert.equal(topics[0].name, topic);
    const partitions = [...topics[0].partitions].sort((a, b) => a.partitionId - b.partitionId);
    assert.deepEqual(partitions.map((p) => p.partitionId), [0, 1, 2]);
    for (const p of partitions) {
      assert.equal(p.partitionErrorCode, 0, `partition ${p.partitionId} error`);
      assert.ok(p.leader >= 0, `partition ${p.partitionId} has a leader`);
      assert.equal(p.replicas.length, 1);
      assert.equal(p.isr.length, 1);
    }
    assert.ok((await admin.listTopics()).includes(topic), 'listTopics includes the topic');

    // kafkajs answers false when every topic already existed (TOPIC_ALREADY_EXISTS).
    const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
    assert.equal(again, false, 'createTopics answers false for an existing topic');
  } finally {
    await admin.disconnect();
  }
});

test('admin lists earliest, latest and by-timestamp offsets', async () => {
  const kafka = kafkaFor(node());
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  try {
    const topic = uniqueName('offsets');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });
    // Partition 0: 5 messages one second apart (explicit timestamps); partition 1: 3.
    const base = Date.now() - 3_600_000;
    const messages = [];
    for (let i = 0; i < 5; i++) messages.push({ partition: 0, value: `p0-${i}`, timestamp: String(base + i * 1000) });
    for (let i = 0; i < 3; i++) messages.push({ partition: 1, value: `p1-${i}`, timestamp: String(base + i * 1000) });
    await producer.send({ topic, acks: -1, messages });

    const byPartition = (list) => Object.fromEntries(list.map((p) => [p.partition, p]));
    const offsets = byPartition(await admin.fetchTopicOffsets(topic));
    assert.deepEqual(
      [0, 1].map((p) => [offsets[p].low, offsets[p].high]),
      [['0', '5'], ['0', '3']],
      'earliest and latest offsets per partition',
    );
    // The first message at or after base+2.5s: offset 3 in partition 0; none in partition 1,
    // where kafkajs reports the latest offset.
    const byTime = byPartition(await admin.fetchTopicOffsetsByTimestamp(topic, base + 2500));
    assert.deepEqual([byTime[0].offset, byTime[1].offset], ['3', '3'], 'offsets by timestamp');
  } finally {
    await Promise.all([producer.disconnect(), admin.disconnect()]);
  }
});
