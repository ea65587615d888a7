// kafkajs admin operations beyond create: topic configs, partitions, delete; group offsets,
// listing and deletion.
import assert from 'node:assert/strict';
import { after, before, test as nodeTest } from 'node:test';
import kafkajs from 'kafkajs';
import { kafkaFor, uniqueName, useFjordNode, waitFor } from '../harness.mjs';

const { node, test } = useFjordNode('admin-ops', { before, after, test: nodeTest });

const { ConfigResourceTypes } = kafkajs; // not a named export of the CommonJS module

// DescribeConfigs config_source values (Kafka's protocol).
const DYNAMIC_TOPIC_CONFIG = 1;

test('admin describes topic configs, adds partitions and deletes a topic', async () => {
  const kafka = kafkaFor(node());
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  try {
    const topic = uniqueName('ops');
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
    });

    const { resources } = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
      includeSynonyms: false,
    });
    assert.equal(resources.length, 1);
    assert.equal(resources[0].errorCode, 0);
    const entries = Object.fromEntries(resources[0].configEntries.map((e) => [e.configName, e]));
    assert.equal(entries['retention.ms']?.configValue, '3600000');
    assert.equal(entries['retention.ms']?.configSource, DYNAMIC_TOPIC_CONFIG);
    assert.equal(entries['retention.ms']?.isDefault, false);
    assert.equal(entries['cleanup.policy']?.configValue, 'delete', 'a default config is listed too');
    assert.notEqual(entries['cleanup.policy']?.configSource, DYNAMIC_TOPIC_CONFIG);

    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] });
    await waitFor('Metadata to list 3 partitions', async () => {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return topics[0].partitions.length === 3;
    });
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ partition: 2, value: 'new partition' }] });
    assert.deepEqual([meta.partition, meta.errorCode, meta.baseOffset], [2, 0, '0']);

    await admin.deleteTopics({ topics: [topic], timeout: 10_000 });
    await waitFor('the topic to leave listTopics', async () => !(await admin.listTopics()).includes(topic));
  } finally {
    await Promise.all([producer.disconnect(), admin.disconnect()]);
  }
});

test("admin sets an inactive group's offsets; a consumer starts there; the group is listed and deleted", async () => {
  const kafka = kafkaFor(node());
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  try {
    const topic = uniqueName('setoffsets');
    const groupId = uniqueName('setoffsets');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    await producer.send({ topic, acks: -1, messages: [...Array(6).keys()].map((i) => ({ value: `m${i}` })) });

    // kafkajs's setOffsets joins the (memberless) group with a paused consumer, seeks and
    // commits; it returns after one fetch wait (5 s).
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '4' }] });
    const [fetched] = await admin.fetchOffsets({ groupId, topics: [topic] });
    assert.deepEqual(fetched.partitions.map((p) => [p.partition, p.offset]), [[0, '4']]);

    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 });
    const offsets = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => void offsets.push(message.offset) });
      await waitFor('the consumer to read from offset 4', () => offsets.length >= 2);
    } finally {
      await consumer.disconnect();
    }
    assert.deepEqual(offsets, ['4', '5']);

    const { groups } = await admin.listGroups();
    const listed = groups.find((g) => g.groupId === groupId);
    assert.equal(listed?.protocolType, 'consumer', 'listGroups lists the group as a consumer group');
    const [described] = (await admin.describeGroups([groupId])).groups;
    assert.equal(described.state, 'Empty');
    assert.equal(described.members.length, 0);

    const [deleted] = await admin.deleteGroups([groupId]);
    assert.equal(deleted.errorCode, 0);
    const after = await admin.listGroups();
    assert.ok(!after.groups.some((g) => g.groupId === groupId), 'the group is gone after deleteGroups');
  } finally {
    await Promise.all([producer.disconnect(), admin.disconnect()]);
  }
});
