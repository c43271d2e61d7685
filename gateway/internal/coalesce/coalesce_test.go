package coalesce_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eprostream/eprostream/gateway/internal/coalesce"
)

func TestConcurrentCallsShareBatches(t *testing.T) {
	var batches atomic.Int32
	b := coalesce.New(100, func(_ context.Context, in []int) ([]int, error) {
		batches.Add(1)
		time.Sleep(5 * time.Millisecond) // a round trip
		out := make([]int, len(in))
		for i, v := range in {
			out[i] = v * 2
		}
		return out, nil
	})
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.Do(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("Do(%d) = %d, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	if n := batches.Load(); n >= 100 {
		t.Fatalf("500 concurrent calls took %d batches", n)
	}
	// Idle: a call runs at once, in a batch of its own.
	before := batches.Load()
	if v, _ := b.Do(context.Background(), 21); v != 42 || batches.Load() != before+1 {
		t.Fatal("idle call")
	}
}

func TestErrorsReachEveryCallOfTheBatch(t *testing.T) {
	boom := errors.New("boom")
	b := coalesce.New(10, func(context.Context, []string) ([]string, error) { return nil, boom })
	if _, err := b.Do(context.Background(), "x"); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	short := coalesce.New(10, func(context.Context, []string) ([]string, error) { return nil, nil })
	if _, err := short.Do(context.Background(), "x"); err == nil {
		t.Fatal("short output accepted")
	}
}

func TestCallerContextEnds(t *testing.T) {
	release := make(chan struct{})
	b := coalesce.New(10, func(_ context.Context, in []int) ([]int, error) { <-release; return in, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Do(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	close(release)
}
