package franz

import (
	"context"
	"errors"
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCreateTopicWithKadm(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	adm := newAdmin(t)
	topic := harness.Name("create")

	created, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if created.NumPartitions != 3 || created.ReplicationFactor != 1 {
		t.Errorf("CreateTopics answer: %d partitions, replication %d; want 3, 1",
			created.NumPartitions, created.ReplicationFactor)
	}
	if created.ID == ([16]byte{}) {
		t.Errorf("CreateTopics answer has no topic id")
	}

	// CreateTopics may answer before every broker's metadata has the topic (Kafka's does), so
	// wait until Metadata lists it.
	var d kadm.TopicDetail
	waitForTopic(t, ctx, adm, topic, func(detail kadm.TopicDetail, ok bool) bool {
		d = detail
		return ok && d.Err == nil && len(d.Partitions) == 3
	})
	if d.ID != created.ID {
		t.Errorf("Metadata topic id %v, CreateTopics said %v", d.ID, created.ID)
	}
	if len(d.Partitions) != 3 {
		t.Fatalf("Metadata lists %d partitions, want 3", len(d.Partitions))
	}
	for p, pd := range d.Partitions {
		if pd.Err != nil || pd.Leader < 0 || len(pd.Replicas) != 1 || len(pd.ISR) != 1 {
			t.Errorf("partition %d: leader %d replicas %v isr %v err %v", p, pd.Leader, pd.Replicas, pd.ISR, pd.Err)
		}
	}

	// Creating it again is TOPIC_ALREADY_EXISTS, as in Kafka.
	_, err = adm.CreateTopic(ctx, 3, 1, nil, topic)
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Errorf("second CreateTopic: %v, want TOPIC_ALREADY_EXISTS", err)
	}
}

func TestListOffsets(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	topic := createTopic(t, ctx, 2)
	cl := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))

	// Partition 0: 5 records one second apart (explicit timestamps); partition 1: 3 records.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var rs []*kgo.Record
	for i := range 5 {
		rs = append(rs, &kgo.Record{Partition: 0, Value: []byte(value(0, i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	for i := range 3 {
		rs = append(rs, &kgo.Record{Partition: 1, Value: []byte(value(1, i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	produceSync(t, ctx, cl, rs...)

	adm := newAdmin(t)
	start, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	// The first record at or after base+2.5s is offset 3 in partition 0 and none (the end,
	// offset 3) in partition 1.
	after, err := adm.ListOffsetsAfterMilli(ctx, base.Add(2500*time.Millisecond).UnixMilli(), topic)
	if err != nil {
		t.Fatalf("ListOffsetsAfterMilli: %v", err)
	}
	// The record with the largest timestamp (ListOffsets timestamp -3, KIP-734).
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListMaxTimestampOffsets: %v", err)
	}
	want := []struct {
		name string
		got  map[string]map[int32]int64
		p0   int64
		p1   int64
	}{
		{"start (earliest)", offsetsOf(t, start), 0, 0},
		{"end (latest)", offsetsOf(t, end), 5, 3},
		{"after base+2.5s (timestamp)", offsetsOf(t, after), 3, 3},
		{"max timestamp", offsetsOf(t, maxTS), 4, 2},
	}
	for _, w := range want {
		if got := w.got[topic]; got[0] != w.p0 || got[1] != w.p1 {
			t.Errorf("%s offsets: %v, want p0=%d p1=%d", w.name, got, w.p0, w.p1)
		}
	}
}

// offsetsOf flattens a ListOffsets answer, failing on any partition error.
func offsetsOf(t *testing.T, listed kadm.ListedOffsets) map[string]map[int32]int64 {
	t.Helper()
	out := map[string]map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Errorf("ListOffsets %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// Topic configs at creation, DescribeConfigs, CreatePartitions and DeleteTopics.
func TestTopicConfigsPartitionsDelete(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	adm := newAdmin(t)
	topic := harness.Name("ops")
	configs := map[string]*string{"retention.ms": kadm.StringPtr("3600000"), "cleanup.policy": kadm.StringPtr("delete")}
	if _, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil {
		t.Fatalf("CreateTopic with configs: %v", err)
	}

	described, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	rc, err := described.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("DescribeConfigs %s: %v %v", topic, err, rc.Err)
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	for key, want := range configs {
		c, ok := got[key]
		if !ok || c.Value == nil || *c.Value != *want || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("config %s: present=%v value=%v source=%v; want %q from DYNAMIC_TOPIC_CONFIG", key, ok, c.MaybeValue(), c.Source, *want)
		}
	}
	// A config left at its default is listed too, with a non-topic source.
	if c, ok := got["segment.bytes"]; !ok || c.Value == nil || c.Source == kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("config segment.bytes: present=%v value=%v source=%v; want a default", ok, c.MaybeValue(), c.Source)
	}

	if _, err := adm.CreatePartitions(ctx, 2, topic); err != nil {
		t.Fatalf("CreatePartitions +2: %v", err)
	}
	waitForTopic(t, ctx, adm, topic, func(d kadm.TopicDetail, ok bool) bool { return ok && d.Err == nil && len(d.Partitions) == 3 })
	cl := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceSync(t, ctx, cl, &kgo.Record{Partition: 2, Value: []byte("to a new partition")})

	resp, err := adm.DeleteTopic(ctx, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("DeleteTopics: %v %v", err, resp.Err)
	}
	waitForTopic(t, ctx, adm, topic, func(d kadm.TopicDetail, ok bool) bool {
		return !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition)
	})
}

// waitForTopic polls Metadata for topic until done(detail, present) holds.
func waitForTopic(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, done func(kadm.TopicDetail, bool) bool) {
	t.Helper()
	for {
		details, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatalf("ListTopics: %v", err)
		}
		d, ok := details[topic]
		if done(d, ok) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("Metadata for %s never reached the expected state: present=%v err=%v partitions=%d", topic, ok, d.Err, len(d.Partitions))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
