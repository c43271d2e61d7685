// Package coalesce groups concurrent calls into batches, so that work with a
// fixed cost per round trip (a Redis pipeline, a rate-limit check for many
// tokens) is paid once per batch instead of once per call.
//
// Batching is natural, not timed: an idle Batcher runs a call at once; while
// a batch is in flight, new calls queue and leave together with the next
// one. Under light load nothing waits; under heavy load batches grow with
// the load. (A hand-written ~80 lines: the libraries found either batch on
// a timer, which adds latency at low load, or pull in a framework.)
package coalesce

import (
	"context"
	"errors"
	"sync"
)

// Func does the work of one batch; it returns one output per input, or an
// error that every call of the batch receives.
type Func[In, Out any] func(ctx context.Context, in []In) ([]Out, error)

// Batcher is safe for concurrent use.
type Batcher[In, Out any] struct {
	fn  Func[In, Out]
	max int

	mu      sync.Mutex
	queue   []*call[In, Out]
	running bool
}

type call[In, Out any] struct {
	ctx  context.Context
	in   In
	out  Out
	err  error
	done chan struct{}
}

// New returns a Batcher running fn on at most max inputs at a time.
func New[In, Out any](max int, fn Func[In, Out]) *Batcher[In, Out] {
	return &Batcher[In, Out]{fn: fn, max: max}
}

// Do runs in as part of the next batch and returns its output. If ctx ends
// first, Do returns ctx's error; the batch may still do the work.
func (b *Batcher[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if !b.running {
		b.running = true
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
}

// drain runs batches until the queue is empty.
func (b *Batcher[In, Out]) drain() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), b.max)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.run(batch)
	}
}

var errShort = errors.New("coalesce: batch function returned fewer outputs than inputs")

func (b *Batcher[In, Out]) run(batch []*call[In, Out]) {
	// The batch outlives any one caller: it runs on the first caller's
	// values but not its cancellation.
	ctx := context.WithoutCancel(batch[0].ctx)
	in := make([]In, len(batch))
	for i, c := range batch {
		in[i] = c.in
	}
	out, err := b.fn(ctx, in)
	if err == nil && len(out) < len(batch) {
		err = errShort
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.out = out[i]
		}
		close(c.done)
	}
}
