package saramatest

import (
	"context"
	"sync"
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/IBM/sarama"
)

// handler collects messages per partition; it marks those below markBelow and, once `want`
// messages arrived in total, commits (session.Commit) and ends the session.
type handler struct {
	markBelow int64
	want      int
	cancel    context.CancelFunc

	mu        sync.Mutex
	got       map[int32][]*sarama.ConsumerMessage
	total     int
	committed bool
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.take(s, m)
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *handler) take(s sarama.ConsumerGroupSession, m *sarama.ConsumerMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.Offset < h.markBelow {
		s.MarkMessage(m, "")
	}
	h.got[m.Partition] = append(h.got[m.Partition], m)
	h.total++
	if h.total == h.want {
		// Commit is synchronous; every claim marked before counting, under this lock.
		s.Commit()
		h.committed = true
		h.cancel()
	}
}

// runGroup joins `group` once, consumes until the handler saw `want` messages, and returns
// them per partition. Group errors fail the test.
func runGroup(t *testing.T, group, topic string, want int, markBelow int64) map[int32][]*sarama.ConsumerMessage {
	t.Helper()
	c := newConfig(sarama.DefaultVersion)
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false // only the explicit session.Commit counts
	c.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup(brokers(), group, c)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			t.Errorf("consumer group %s: %v", group, err)
		}
	}()
	defer func() { _ = cg.Close(); <-errsDone }() // Close ends the Errors channel

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	h := &handler{markBelow: markBelow, want: want, cancel: cancel, got: map[int32][]*sarama.ConsumerMessage{}}
	// Consume returns at the end of each session (a rebalance); join again until done.
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatalf("Consume: %v", err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.committed {
		t.Fatalf("group %s: saw %d of %d messages within 45s", group, h.total, want)
	}
	return h.got
}

func committedOffsets(t *testing.T, group, topic string, partitions []int32) map[int32]int64 {
	t.Helper()
	resp, err := newAdmin(t).ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	out := map[int32]int64{}
	for _, p := range partitions {
		b := resp.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError {
			t.Fatalf("OffsetFetch %s[%d]: %+v", topic, p, b)
		}
		out[p] = b.Offset
	}
	return out
}

// A group member marks and commits the first 6 messages of each partition; a second run of
// the group resumes at offset 6.
func TestConsumerGroupCommitThenResume(t *testing.T) {
	topic := createTopic(t, 2)
	group := harness.Name("group")
	const perPartition, commitUpTo = 10, 6
	producer := newSyncProducer(t, idempotentProducerConfig(sarama.DefaultVersion))
	var batch []*sarama.ProducerMessage
	for p := int32(0); p < 2; p++ {
		for i := range perPartition {
			batch = append(batch, message(topic, p, i))
		}
	}
	if err := producer.SendMessages(batch); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}

	first := runGroup(t, group, topic, 2*perPartition, commitUpTo)
	for p := int32(0); p < 2; p++ {
		ms := first[p]
		if len(ms) != perPartition || ms[0].Offset != 0 || ms[perPartition-1].Offset != perPartition-1 {
			t.Fatalf("first run: partition %d gave %d messages, want offsets 0..%d", p, len(ms), perPartition-1)
		}
	}
	if got := committedOffsets(t, group, topic, []int32{0, 1}); got[0] != commitUpTo || got[1] != commitUpTo {
		t.Fatalf("committed after the first run: %v, want %d for both partitions", got, commitUpTo)
	}

	second := runGroup(t, group, topic, 2*(perPartition-commitUpTo), perPartition)
	for p := int32(0); p < 2; p++ {
		ms := second[p]
		if len(ms) != perPartition-commitUpTo {
			t.Fatalf("second run: partition %d gave %d messages, want %d", p, len(ms), perPartition-commitUpTo)
		}
		for i, m := range ms {
			if m.Offset != int64(commitUpTo+i) {
				t.Errorf("second run: partition %d message %d at offset %d, want %d", p, i, m.Offset, commitUpTo+i)
			}
		}
	}
	if got := committedOffsets(t, group, topic, []int32{0, 1}); got[0] != perPartition || got[1] != perPartition {
		t.Errorf("committed after the second run: %v, want %d for both partitions", got, perPartition)
	}
}
