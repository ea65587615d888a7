package franz

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeAll reads n records of topic from the start of every partition (no group).
func consumeAll(t *testing.T, topic string, n int) map[int32][]*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cl := newClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond))
	got := pollN(t, ctx, cl, n)
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	return byPartition(got)
}

// Idempotence is kgo's default; acks=all is set explicitly so the test says what it checks.
func TestProduceSyncIdempotentAcksAll(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	topic := createTopic(t, ctx, 3)
	cl := newClient(t,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))

	// Two ProduceSync rounds of 10 records per partition: offsets continue across rounds.
	const perRound = 10
	for round := range 2 {
		var rs []*kgo.Record
		for p := int32(0); p < 3; p++ {
			for i := range perRound {
				n := round*perRound + i
				rs = append(rs, &kgo.Record{
					Partition: p,
					Key:       []byte(fmt.Sprintf("key-%d", n)),
					Value:     []byte(value(p, n)),
					Headers:   []kgo.RecordHeader{{Key: "n", Value: []byte(fmt.Sprint(n))}},
				})
			}
		}
		results := cl.ProduceSync(ctx, rs...)
		if err := results.FirstErr(); err != nil {
			t.Fatalf("round %d: ProduceSync: %v", round, err)
		}
		for _, res := range results {
			r := res.Record
			var n int
			fmt.Sscan(string(r.Headers[0].Value), &n)
			if r.Offset != int64(n) {
				t.Errorf("round %d: record %d of partition %d got offset %d", round, n, r.Partition, r.Offset)
			}
			if r.ProducerID < 0 {
				t.Errorf("round %d: idempotent produce answered without a producer id (%d)", round, r.ProducerID)
			}
		}
	}

	parts := consumeAll(t, topic, 3*2*perRound)
	for p := int32(0); p < 3; p++ {
		rs := parts[p]
		if len(rs) != 2*perRound {
			t.Fatalf("partition %d: %d records, want %d", p, len(rs), 2*perRound)
		}
		for i, r := range rs {
			if r.Offset != int64(i) || string(r.Value) != value(p, i) || string(r.Key) != fmt.Sprintf("key-%d", i) {
				t.Errorf("partition %d record %d: offset %d key %q value %q", p, i, r.Offset, r.Key, r.Value)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "n" || string(r.Headers[0].Value) != fmt.Sprint(i) {
				t.Errorf("partition %d record %d: headers %v", p, i, r.Headers)
			}
			// The stored batch carries the idempotent producer's id.
			if r.ProducerID < 0 {
				t.Errorf("partition %d record %d: stored without a producer id", p, i)
			}
		}
	}
}

func TestProduceCompressionCodecs(t *testing.T) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			topic := createTopic(t, ctx, 1)
			cl := newClient(t,
				kgo.DefaultProduceTopic(topic),
				kgo.ProducerBatchCompression(c.codec),
				// Linger so the records go out as one compressed batch.
				kgo.ProducerLinger(50*time.Millisecond))
			const n = 50
			var rs []*kgo.Record
			for i := range n {
				// Repetitive values, so each codec actually shrinks the batch.
				rs = append(rs, &kgo.Record{Value: []byte(c.name + "-" + strings.Repeat(fmt.Sprint(i%10), 200))})
			}
			produceSync(t, ctx, cl, rs...)

			got := consumeAll(t, topic, n)[0]
			for i, r := range got {
				if r.Offset != int64(i) || !bytes.Equal(r.Value, rs[i].Value) {
					t.Fatalf("record %d: offset %d value %.40q..., want %.40q...", i, r.Offset, r.Value, rs[i].Value)
				}
			}
		})
	}
}
