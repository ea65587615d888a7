package saramatest

import (
	"errors"
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/IBM/sarama"
)

func TestClusterAdminCreateTopic(t *testing.T) {
	adm := newAdmin(t)
	topic := harness.Name("create")
	detail := &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}
	if err := adm.CreateTopic(topic, detail, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}

	waitForPartitions(t, adm, topic, 3)
	meta, err := adm.DescribeTopics([]string{topic})
	if err != nil {
		t.Fatalf("DescribeTopics: %v", err)
	}
	for _, p := range meta[0].Partitions {
		if p.Leader < 0 || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Errorf("partition %d: leader %d replicas %v isr %v", p.ID, p.Leader, p.Replicas, p.Isr)
		}
	}

	topics, err := adm.ListTopics()
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if d, ok := topics[topic]; !ok || d.NumPartitions != 3 || d.ReplicationFactor != 1 {
		t.Errorf("ListTopics: %s present=%v detail %+v; want 3 partitions, replication 1", topic, ok, d)
	}

	// A second create is TOPIC_ALREADY_EXISTS, as in Kafka.
	err = adm.CreateTopic(topic, detail, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Errorf("second CreateTopic: %v, want %v", err, sarama.ErrTopicAlreadyExists)
	}
}

// Topic configs, CreatePartitions, DescribeCluster, DeleteTopic.
func TestClusterAdminTopicOps(t *testing.T) {
	adm := newAdmin(t)
	topic := harness.Name("ops")
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}
	if err := adm.CreateTopic(topic, detail, false); err != nil {
		t.Fatalf("CreateTopic with configs: %v", err)
	}

	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		t.Fatalf("DescribeConfig: %v", err)
	}
	byName := map[string]sarama.ConfigEntry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	if e, ok := byName["retention.ms"]; !ok || e.Value != retention || e.Source != sarama.SourceTopic || e.Default {
		t.Errorf("retention.ms: present=%v %+v; want %s from the topic", ok, e, retention)
	}
	if e, ok := byName["cleanup.policy"]; !ok || e.Value != "delete" || e.Source == sarama.SourceTopic {
		t.Errorf("cleanup.policy: present=%v %+v; want the default delete", ok, e)
	}

	brokers, controller, err := adm.DescribeCluster()
	if err != nil || len(brokers) != 1 || controller < 0 {
		t.Errorf("DescribeCluster: %d brokers, controller %d, %v; want 1 broker and a controller", len(brokers), controller, err)
	}

	if err := adm.CreatePartitions(topic, 3, nil, false); err != nil {
		t.Fatalf("CreatePartitions to 3: %v", err)
	}
	waitForPartitions(t, adm, topic, 3)

	if err := adm.DeleteTopic(topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		topics, err := adm.ListTopics()
		if err != nil {
			t.Fatalf("ListTopics: %v", err)
		}
		if _, ok := topics[topic]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListTopics still lists %s 10s after DeleteTopic", topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForPartitions polls Metadata until topic has n partitions (CreateTopics and
// CreatePartitions may answer before the metadata shows the change, as in Kafka).
func waitForPartitions(t *testing.T, adm sarama.ClusterAdmin, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		meta, err := adm.DescribeTopics([]string{topic})
		if err == nil && len(meta) == 1 && errors.Is(meta[0].Err, sarama.ErrNoError) && len(meta[0].Partitions) == n {
			return
		}
		if time.Now().After(deadline) {
			if err == nil && len(meta) == 1 {
				t.Fatalf("DescribeTopics after 10s: %+v; want %d partitions", *meta[0], n)
			}
			t.Fatalf("DescribeTopics after 10s: %v %v", meta, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Group offsets set by an admin, listed, described, partly deleted, then the group deleted.
func TestClusterAdminGroupOps(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, 2)
	group := harness.Name("ops")
	offsets := map[string]map[int32]sarama.OffsetAndMetadata{topic: {0: {Offset: 0, LeaderEpoch: -1}, 1: {Offset: 0, LeaderEpoch: -1}}}
	resp, err := adm.AlterConsumerGroupOffsets(group, offsets, nil)
	if err != nil {
		t.Fatalf("AlterConsumerGroupOffsets: %v", err)
	}
	for p, kerr := range resp.Errors[topic] {
		if kerr != sarama.ErrNoError {
			t.Errorf("AlterConsumerGroupOffsets %s[%d]: %v", topic, p, kerr)
		}
	}
	if got := committedOffsets(t, group, topic, []int32{0, 1}); got[0] != 0 || got[1] != 0 {
		t.Fatalf("committed offsets %v, want 0 for both partitions", got)
	}

	groups, err := adm.ListConsumerGroups()
	if err != nil {
		t.Fatalf("ListConsumerGroups: %v", err)
	}
	if _, ok := groups[group]; !ok {
		t.Errorf("ListConsumerGroups does not list %s", group)
	}
	described, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil || len(described) != 1 || described[0].State != "Empty" || len(described[0].Members) != 0 {
		t.Errorf("DescribeConsumerGroups: %+v %v; want one Empty group without members", described, err)
	}

	if err := adm.DeleteConsumerGroupOffset(group, topic, 1); err != nil {
		t.Fatalf("DeleteConsumerGroupOffset %s[1]: %v", topic, err)
	}
	fetched, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	if b := fetched.GetBlock(topic, 1); b == nil || b.Offset != -1 {
		t.Errorf("partition 1 after DeleteConsumerGroupOffset: %+v, want offset -1 (none)", b)
	}

	if err := adm.DeleteConsumerGroup(group); err != nil {
		t.Fatalf("DeleteConsumerGroup: %v", err)
	}
	groups, err = adm.ListConsumerGroups()
	if err != nil {
		t.Fatalf("ListConsumerGroups: %v", err)
	}
	if _, ok := groups[group]; ok {
		t.Errorf("ListConsumerGroups still lists %s after DeleteConsumerGroup", group)
	}
}
