package gateway

import (
	"context"
	"time"

	"github.com/eprostream/eprostream/internal/redis/idempotency"
)

// completer marks idempotency keys done after the answer went out: the
// key is still marked only after Kafka acknowledged, but the client does
// not wait for it, and completions travel in large pipelines. A retry that
// arrives in between finds the key pending and waits for the completion
// (milliseconds). If the process dies in between, the claim expires after
// idempotency.Store.Pending and a retry sends again; downstream drops the
// duplicate by message_id.
type completer struct {
	store *idempotency.Store
	in    chan completeIn
	done  chan struct{}
	g     *Gateway
}

const (
	completeEvery = 2 * time.Millisecond
	completeBatch = 1024
)

func newCompleter(g *Gateway) *completer {
	c := &completer{store: g.deps.Idempotency, in: make(chan completeIn, 64<<10), done: make(chan struct{}), g: g}
	go c.run()
	return c
}

// add queues a completion; when the queue is full it completes at once.
func (c *completer) add(ctx context.Context, in completeIn) {
	select {
	case c.in <- in:
	default:
		c.flush(ctx, []completeIn{in})
	}
}

func (c *completer) run() {
	defer close(c.done)
	tick := time.NewTicker(completeEvery)
	defer tick.Stop()
	var buf []completeIn
	for {
		select {
		case in, ok := <-c.in:
			if !ok {
				c.flush(context.Background(), buf)
				return
			}
			if buf = append(buf, in); len(buf) >= completeBatch {
				c.flush(context.Background(), buf)
				buf = nil
			}
		case <-tick.C:
			if len(buf) > 0 {
				c.flush(context.Background(), buf)
				buf = nil
			}
		}
	}
}

func (c *completer) flush(ctx context.Context, batch []completeIn) {
	if len(batch) == 0 {
		return
	}
	claims, outs := make([]idempotency.Claim, len(batch)), make([]idempotency.Outcome, len(batch))
	for i, b := range batch {
		claims[i], outs[i] = b.c, b.out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.store.CompleteMany(ctx, claims, outs); err != nil {
		c.g.metrics.degraded.WithLabelValues("idempotency").Add(float64(len(batch)))
		c.g.log.Warn("idempotency outcomes not stored; their claims expire and retries would send again",
			"count", len(batch), "err", err)
	}
}

// close stores what is queued and stops.
func (c *completer) close() {
	close(c.in)
	<-c.done
}
