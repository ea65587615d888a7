package franz

import (
	"context"
	"sync"
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceValues writes `perPartition` records to each of `partitions` partitions.
func produceValues(t *testing.T, topic string, partitions int32, perPartition int) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cl := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for p := int32(0); p < partitions; p++ {
		for i := range perPartition {
			rs = append(rs, &kgo.Record{Partition: p, Value: []byte(value(p, i))})
		}
	}
	produceSync(t, ctx, cl, rs...)
	cl.Close()
}

// groupConsumer joins `group` for `topic`, starting at the earliest offset when the group has
// no committed offset.
func groupConsumer(t *testing.T, group, topic string, opts ...kgo.Opt) *kgo.Client {
	return newClient(t, append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
}

// committed is the group's committed offsets for topic, per partition.
func committed(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	offsets, err := newAdmin(t).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	out := map[int32]int64{}
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Errorf("OffsetFetch %s %s[%d]: %v", group, o.Topic, o.Partition, o.Err)
		}
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// A consumer commits part of what it read and leaves; a new consumer in the same group
// resumes right after the committed offsets.
func TestGroupCommitThenResume(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	topic := createTopic(t, ctx, 2)
	group := harness.Name("group")
	const perPartition, commitUpTo = 10, 6
	produceValues(t, topic, 2, perPartition)

	first := groupConsumer(t, group, topic, kgo.DisableAutoCommit())
	parts := byPartition(pollN(t, ctx, first, 2*perPartition))
	var toCommit []*kgo.Record
	for p := int32(0); p < 2; p++ {
		if len(parts[p]) != perPartition {
			t.Fatalf("first consumer: partition %d gave %d records, want %d", p, len(parts[p]), perPartition)
		}
		// CommitRecords commits the offset after the highest record per partition.
		toCommit = append(toCommit, parts[p][commitUpTo-1])
	}
	if err := first.CommitRecords(ctx, toCommit...); err != nil {
		t.Fatalf("CommitRecords: %v", err)
	}
	if got := committed(t, group, topic); got[0] != commitUpTo || got[1] != commitUpTo {
		t.Fatalf("committed offsets %v, want %d for both partitions", got, commitUpTo)
	}

	// The group while the first member is in it.
	described, err := newAdmin(t).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if g := described[group]; g.Err != nil || g.State != "Stable" || len(g.Members) != 1 || g.Protocol == "" {
		t.Errorf("DescribeGroups: state %q members %d protocol %q err %v; want Stable, 1 member",
			g.State, len(g.Members), g.Protocol, g.Err)
	}
	first.Close() // leaves the group (LeaveGroup)

	second := groupConsumer(t, group, topic, kgo.DisableAutoCommit())
	rest := byPartition(pollN(t, ctx, second, 2*(perPartition-commitUpTo)))
	for p := int32(0); p < 2; p++ {
		rs := rest[p]
		if len(rs) != perPartition-commitUpTo {
			t.Fatalf("second consumer: partition %d gave %d records, want %d", p, len(rs), perPartition-commitUpTo)
		}
		for i, r := range rs {
			if want := int64(commitUpTo + i); r.Offset != want || string(r.Value) != value(p, int(want)) {
				t.Errorf("second consumer: partition %d record %d at offset %d (%q), want offset %d", p, i, r.Offset, r.Value, want)
			}
		}
	}
	if err := second.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("CommitUncommittedOffsets: %v", err)
	}
	if got := committed(t, group, topic); got[0] != perPartition || got[1] != perPartition {
		t.Errorf("committed offsets after the second consumer %v, want %d for both", got, perPartition)
	}
}

// With kgo's default autocommit, closing the client commits what was processed (in the revoke
// before leaving), and a new member then starts after it.
func TestGroupAutoCommitOnClose(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	topic := createTopic(t, ctx, 1)
	group := harness.Name("autocommit")
	produceValues(t, topic, 1, 5)

	first := groupConsumer(t, group, topic)
	if got := pollN(t, ctx, first, 5); len(got) != 5 {
		t.Fatalf("first consumer got %d records, want 5", len(got))
	}
	// kgo's default autocommit is at-least-once: a poll's records count as processed once the
	// next poll starts (as in a poll loop), so poll once more before closing.
	idle, cancelIdle := context.WithTimeout(ctx, 300*time.Millisecond)
	if extra := first.PollFetches(idle).Records(); len(extra) != 0 {
		t.Fatalf("first consumer got %d records more than produced", len(extra))
	}
	cancelIdle()
	first.Close()
	if got := committed(t, group, topic); got[0] != 5 {
		t.Fatalf("committed offset after Close: %v, want 5", got)
	}

	produceValues(t, topic, 1, 1) // one more record, at offset 5
	second := groupConsumer(t, group, topic)
	got := pollN(t, ctx, second, 1)
	if got[0].Offset != 5 {
		t.Errorf("second consumer started at offset %d, want 5", got[0].Offset)
	}
}

// assignment tracks a member's partitions through kgo's (cooperative, incremental) callbacks.
type assignment struct {
	mu    sync.Mutex
	parts map[int32]bool
}

func (a *assignment) opts(topic string) []kgo.Opt {
	a.parts = map[int32]bool{}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			a.mu.Lock()
			defer a.mu.Unlock()
			for _, p := range m[topic] {
				if add {
					a.parts[p] = true
				} else {
					delete(a.parts, p)
				}
			}
		}
	}
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(change(true)),
		kgo.OnPartitionsRevoked(change(false)),
		kgo.OnPartitionsLost(change(false)),
	}
}

func (a *assignment) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.parts)
}

// Two members share a topic's partitions (kgo's default cooperative-sticky balancer); when
// one leaves, the other takes all of them again.
func TestGroupTwoMembersRebalance(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	topic := createTopic(t, ctx, 4)
	group := harness.Name("rebalance")

	// Both members keep polling (as applications do) while the test watches the assignments.
	var a, b assignment
	first := groupConsumer(t, group, topic, a.opts(topic)...)
	waitUntil := func(what string, cond func() bool, clients ...*kgo.Client) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not reached (first has %d partitions, second %d)", what, a.count(), b.count())
			}
			for _, cl := range clients {
				poll, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				cl.PollFetches(poll)
				cancel()
			}
		}
	}
	waitUntil("the first member owns all 4 partitions", func() bool { return a.count() == 4 }, first)
	second := groupConsumer(t, group, topic, b.opts(topic)...) // kgo joins on creation
	waitUntil("the members own 2 partitions each", func() bool { return a.count() == 2 && b.count() == 2 }, first, second)
	second.Close()
	waitUntil("the first member owns all 4 partitions again", func() bool { return a.count() == 4 }, first)
}

// The tools' side of groups: offsets committed by an admin for a group with no members (as
// reset tools do) are where a consumer starts; then list, describe, delete offsets, delete.
func TestGroupAdminOffsetsListDelete(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	adm := newAdmin(t)
	topic := createTopic(t, ctx, 2)
	group := harness.Name("admin")
	produceValues(t, topic, 2, 6)

	var offsets kadm.Offsets
	offsets.AddOffset(topic, 0, 3, -1)
	offsets.AddOffset(topic, 1, 5, -1)
	if err := adm.CommitAllOffsets(ctx, group, offsets); err != nil {
		t.Fatalf("OffsetCommit from an admin (no generation): %v", err)
	}
	if got := committed(t, group, topic); got[0] != 3 || got[1] != 5 {
		t.Fatalf("committed offsets %v, want p0=3 p1=5", got)
	}

	cl := groupConsumer(t, group, topic, kgo.DisableAutoCommit())
	got := byPartition(pollN(t, ctx, cl, 4))
	if len(got[0]) != 3 || got[0][0].Offset != 3 || len(got[1]) != 1 || got[1][0].Offset != 5 {
		t.Fatalf("consumer read %d records of p0 and %d of p1; want p0 from offset 3 (3 records), p1 from 5 (1)",
			len(got[0]), len(got[1]))
	}
	cl.Close()

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if g, ok := listed[group]; !ok || g.State != "Empty" || g.ProtocolType != "consumer" {
		t.Errorf("ListGroups: %s present=%v %+v; want state Empty, protocol type consumer", group, ok, g)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if g := described[group]; g.Err != nil || g.State != "Empty" || len(g.Members) != 0 {
		t.Errorf("DescribeGroups: state %q members %d err %v; want Empty, no members", g.State, len(g.Members), g.Err)
	}

	// OffsetDelete of one partition; the group keeps the other's offset.
	deleted, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {1: {}}})
	if err != nil || deleted.Error() != nil {
		t.Fatalf("OffsetDelete: %v %v", err, deleted.Error())
	}
	if got := committed(t, group, topic); len(got) != 1 || got[0] != 3 {
		t.Errorf("committed offsets after OffsetDelete of p1: %v, want only p0=3", got)
	}

	if resp, err := adm.DeleteGroup(ctx, group); err != nil || resp.Err != nil {
		t.Fatalf("DeleteGroups: %v %v", err, resp.Err)
	}
	listed, err = adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups after delete: %v", err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("ListGroups still lists %s after DeleteGroups", group)
	}
}

// Kafka 4.1's group coordinator keeps an Empty group whose last committed offset was removed
// by OffsetDelete: it is still listed, described as Empty and can be deleted.
func TestGroupKeptAfterOffsetDeleteOfLastOffset(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	adm := newAdmin(t)
	topic := createTopic(t, ctx, 1)
	group := harness.Name("lastoffset")
	var offsets kadm.Offsets
	offsets.AddOffset(topic, 0, 0, -1)
	if err := adm.CommitAllOffsets(ctx, group, offsets); err != nil {
		t.Fatalf("OffsetCommit from an admin: %v", err)
	}
	deleted, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || deleted.Error() != nil {
		t.Fatalf("OffsetDelete: %v %v", err, deleted.Error())
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if g, ok := listed[group]; !ok || g.State != "Empty" {
		t.Errorf("ListGroups after OffsetDelete: %s present=%v %+v; want listed, Empty", group, ok, g)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if g := described[group]; g.Err != nil || g.State != "Empty" {
		t.Errorf("DescribeGroups after OffsetDelete: state %q err %v; want Empty", g.State, g.Err)
	}
	if resp, err := adm.DeleteGroup(ctx, group); err != nil || resp.Err != nil {
		t.Errorf("DeleteGroups after OffsetDelete: %v %v; want success", err, resp.Err)
	}
}
