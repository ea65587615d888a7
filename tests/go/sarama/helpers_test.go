package saramatest

import (
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/IBM/sarama"
)

// newConfig is a sarama config for `version` with short timeouts, so a hang fails fast.
func newConfig(version sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "fjord-go-sarama"
	c.Version = version
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	return c
}

func brokers() []string { return []string{node.Bootstrap} }

func newAdmin(t *testing.T) sarama.ClusterAdmin {
	t.Helper()
	adm, err := sarama.NewClusterAdmin(brokers(), newConfig(sarama.DefaultVersion))
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	t.Cleanup(func() { _ = adm.Close() })
	return adm
}

// createTopic creates a fresh topic with ClusterAdmin and returns its name.
func createTopic(t *testing.T, partitions int32) string {
	t.Helper()
	topic := harness.Name("sarama")
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if err := newAdmin(t).CreateTopic(topic, detail, false); err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	return topic
}

// idempotentProducerConfig is what sarama requires for idempotence: Version >= 0.11,
// acks=all, one request in flight per connection, and retries.
func idempotentProducerConfig(version sarama.KafkaVersion) *sarama.Config {
	c := newConfig(version)
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	return c
}

func newSyncProducer(t *testing.T, c *sarama.Config) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer(brokers(), c)
	if err != nil {
		t.Fatalf("NewSyncProducer (version %s): %v", c.Version, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// readPartition reads n messages of one partition from the oldest offset with a plain
// (group-less) consumer.
func readPartition(t *testing.T, topic string, partition int32, n int) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer(brokers(), newConfig(sarama.DefaultVersion))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("ConsumePartition %s[%d]: %v", topic, partition, err)
	}
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			t.Fatalf("consuming %s[%d]: %v", topic, partition, err)
		case <-timeout:
			t.Fatalf("consumed %d of %d messages of %s[%d] within 30s", len(got), n, topic, partition)
		}
	}
	return got
}
