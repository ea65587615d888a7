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

	// CreateTopics may answer before every broker's metadata has the topic (Kafka's does), so
	// wait until Metadata lists it.
	var meta []*sarama.TopicMetadata
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		meta, err = adm.DescribeTopics([]string{topic})
		if err == nil && len(meta) == 1 && errors.Is(meta[0].Err, sarama.ErrNoError) && len(meta[0].Partitions) == 3 {
			break
		}
		if time.Now().After(deadline) {
			if err == nil && len(meta) == 1 {
				t.Fatalf("DescribeTopics after 10s: %+v", *meta[0])
			}
			t.Fatalf("DescribeTopics after 10s: %v %v", meta, err)
		}
		time.Sleep(100 * time.Millisecond)
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
