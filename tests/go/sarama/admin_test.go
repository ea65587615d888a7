package saramatest

import (
	"errors"
	"testing"

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

	topics, err := adm.ListTopics()
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if d, ok := topics[topic]; !ok || d.NumPartitions != 3 || d.ReplicationFactor != 1 {
		t.Errorf("ListTopics: %s present=%v detail %+v; want 3 partitions, replication 1", topic, ok, d)
	}

	meta, err := adm.DescribeTopics([]string{topic})
	if err != nil {
		t.Fatalf("DescribeTopics: %v", err)
	}
	if len(meta) != 1 || !errors.Is(meta[0].Err, sarama.ErrNoError) || len(meta[0].Partitions) != 3 {
		t.Fatalf("DescribeTopics: %+v", meta)
	}
	for _, p := range meta[0].Partitions {
		if p.Leader < 0 || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Errorf("partition %d: leader %d replicas %v isr %v", p.ID, p.Leader, p.Replicas, p.Isr)
		}
	}

	// A second create is TOPIC_ALREADY_EXISTS, as in Kafka.
	err = adm.CreateTopic(topic, detail, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Errorf("second CreateTopic: %v, want %v", err, sarama.ErrTopicAlreadyExists)
	}
}
