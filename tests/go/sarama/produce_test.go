package saramatest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// The idempotent SyncProducer at the oldest version sarama allows idempotence with (0.11),
// sarama's default version and the newest Kafka release we compare against.
func TestIdempotentSyncProducer(t *testing.T) {
	for _, version := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.DefaultVersion, sarama.V4_1_0_0} {
		t.Run("v"+version.String(), func(t *testing.T) {
			topic := createTopic(t, 2)
			producer := newSyncProducer(t, idempotentProducerConfig(version))

			// SendMessage one at a time to partition 0, a SendMessages batch to partition 1.
			const n = 10
			for i := range n {
				p, off, err := producer.SendMessage(message(topic, 0, i))
				if err != nil {
					t.Fatalf("SendMessage %d: %v", i, err)
				}
				if p != 0 || off != int64(i) {
					t.Errorf("SendMessage %d: partition %d offset %d, want 0, %d", i, p, off, i)
				}
			}
			var batch []*sarama.ProducerMessage
			for i := range n {
				batch = append(batch, message(topic, 1, i))
			}
			if err := producer.SendMessages(batch); err != nil {
				t.Fatalf("SendMessages: %v", err)
			}
			for i, m := range batch {
				if m.Offset != int64(i) {
					t.Errorf("SendMessages: message %d at offset %d", i, m.Offset)
				}
			}

			checkOffsets(t, version, topic, map[int32]int64{0: n, 1: n})
			for p := int32(0); p < 2; p++ {
				for i, m := range readPartition(t, topic, p, n) {
					want := message(topic, p, i)
					if m.Offset != int64(i) || string(m.Key) != string(want.Key.(sarama.StringEncoder)) ||
						string(m.Value) != string(want.Value.(sarama.StringEncoder)) {
						t.Errorf("partition %d message %d: offset %d key %q value %q", p, i, m.Offset, m.Key, m.Value)
					}
					if len(m.Headers) != 1 || string(m.Headers[0].Key) != "n" || string(m.Headers[0].Value) != fmt.Sprint(i) {
						t.Errorf("partition %d message %d: headers %v", p, i, m.Headers)
					}
				}
			}
		})
	}
}

func TestProducerCompressionCodecs(t *testing.T) {
	codecs := []sarama.CompressionCodec{
		sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
		sarama.CompressionLZ4, sarama.CompressionZSTD,
	}
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			topic := createTopic(t, 1)
			c := idempotentProducerConfig(sarama.DefaultVersion)
			c.Producer.Compression = codec
			producer := newSyncProducer(t, c)
			var batch []*sarama.ProducerMessage
			for i := range 50 {
				// Repetitive values, so each codec actually shrinks the batch.
				v := codec.String() + "-" + strings.Repeat(fmt.Sprint(i%10), 200)
				batch = append(batch, &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(v)})
			}
			if err := producer.SendMessages(batch); err != nil {
				t.Fatalf("SendMessages: %v", err)
			}
			for i, m := range readPartition(t, topic, 0, len(batch)) {
				want := []byte(batch[i].Value.(sarama.StringEncoder))
				if m.Offset != int64(i) || !bytes.Equal(m.Value, want) {
					t.Fatalf("message %d: offset %d value %.40q..., want %.40q...", i, m.Offset, m.Value, want)
				}
			}
		})
	}
}

func message(topic string, partition int32, i int) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Partition: partition,
		Key:       sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
		Value:     sarama.StringEncoder(fmt.Sprintf("p%d-value-%d", partition, i)),
		Headers:   []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(fmt.Sprint(i))}},
	}
}

// checkOffsets compares the partitions' latest offsets (ListOffsets through a sarama Client
// of `version`) with want, and their oldest with 0.
func checkOffsets(t *testing.T, version sarama.KafkaVersion, topic string, want map[int32]int64) {
	t.Helper()
	client, err := sarama.NewClient(brokers(), newConfig(version))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	for p, end := range want {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil || newest != end {
			t.Errorf("GetOffset(%s[%d], newest) = %d, %v; want %d", topic, p, newest, err, end)
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil || oldest != 0 {
			t.Errorf("GetOffset(%s[%d], oldest) = %d, %v; want 0", topic, p, oldest, err)
		}
	}
}
