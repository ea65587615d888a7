package franz

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fjord.dev/tests/go/harness"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCtx bounds one test's client calls.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient is a kgo client seeded with the node; closed when the test ends (Close is
// idempotent, so tests may close it earlier).
func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(node.Bootstrap), kgo.ClientID("fjord-go-franz")}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t))
}

// createTopic creates a fresh topic with kadm and returns its name.
func createTopic(t *testing.T, ctx context.Context, partitions int32) string {
	t.Helper()
	topic := harness.Name("franz")
	if _, err := newAdmin(t).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	return topic
}

// produceSync produces the records and fails the test on any error.
func produceSync(t *testing.T, ctx context.Context, cl *kgo.Client, rs ...*kgo.Record) {
	t.Helper()
	for _, res := range cl.ProduceSync(ctx, rs...) {
		if res.Err != nil {
			t.Fatalf("produce to %s[%d]: %v", res.Record.Topic, res.Record.Partition, res.Err)
		}
	}
}

// pollN polls until n records arrived (or the context ends), failing on fetch errors.
func pollN(t *testing.T, ctx context.Context, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records before the deadline: %v", len(got), n, ctx.Err())
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s[%d]: %v", topic, p, err)
		})
		got = append(got, fetches.Records()...)
	}
	return got
}

// byPartition groups records by partition, keeping their order.
func byPartition(rs []*kgo.Record) map[int32][]*kgo.Record {
	m := map[int32][]*kgo.Record{}
	for _, r := range rs {
		m[r.Partition] = append(m[r.Partition], r)
	}
	return m
}

func value(p int32, i int) string { return fmt.Sprintf("p%d-value-%d", p, i) }
