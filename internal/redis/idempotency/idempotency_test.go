package idempotency_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/redis/idempotency"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestConcurrentDuplicatesDoTheWorkOnce(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	s := idempotency.New(rdb, prefix)
	ctx := context.Background()
	var work atomic.Int32
	answers := make([]string, 50)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.Begin(ctx, "k1", "fp")
			if err != nil {
				answers[i] = err.Error()
				return
			}
			if c.Replay != nil {
				answers[i] = string(c.Replay.Body)
				return
			}
			work.Add(1)
			time.Sleep(50 * time.Millisecond) // the Kafka round trip
			if err := s.Complete(ctx, c, idempotency.Outcome{Status: 202, Body: []byte(`{"message_id":"m1"}`)}); err != nil {
				t.Error(err)
			}
			answers[i] = `{"message_id":"m1"}`
		}()
	}
	wg.Wait()
	if work.Load() != 1 {
		t.Fatalf("work done %d times", work.Load())
	}
	for i, a := range answers {
		if a != `{"message_id":"m1"}` {
			t.Fatalf("answer %d: %s", i, a)
		}
	}
	if ttl := rdb.TTL(ctx, prefix+"idem:k1").Val(); ttl < 23*time.Hour {
		t.Fatalf("outcome kept for %v", ttl)
	}
}

// A worker that fails after claiming must not leave the key marked: the
// retry has to do the work.
func TestFailedWorkLeavesTheKeyFree(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	s := idempotency.New(rdb, prefix)
	ctx := context.Background()
	c, err := s.Begin(ctx, "k2", "fp")
	if err != nil || !c.Owned {
		t.Fatal(c, err)
	}
	if err := s.Abort(ctx, c); err != nil { // Kafka refused it
		t.Fatal(err)
	}
	retry, err := s.Begin(ctx, "k2", "fp")
	if err != nil || !retry.Owned {
		t.Fatalf("retry after a failed attempt: %+v %v, want to own the key", retry, err)
	}
}

func TestMismatchAndInProgress(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	s := idempotency.New(rdb, prefix)
	s.Wait = 50 * time.Millisecond
	ctx := context.Background()
	c, _ := s.Begin(ctx, "k3", "fp1")
	if _, err := s.Begin(ctx, "k3", "fp1"); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("duplicate while pending: %v", err)
	}
	if _, err := s.Begin(ctx, "k3", "fp2"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("other request, same key: %v", err)
	}
	_ = s.Complete(ctx, c, idempotency.Outcome{Status: 202, Body: []byte("x:y")})
	r, err := s.Begin(ctx, "k3", "fp1")
	if err != nil || r.Replay == nil || r.Replay.Status != 202 || string(r.Replay.Body) != "x:y" {
		t.Fatalf("replay %+v %v", r, err)
	}
	if _, err := s.Begin(ctx, "k3", "fp2"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("other request after done: %v", err)
	}
}

func TestBeginManyInOneRoundTrip(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	s := idempotency.New(rdb, prefix)
	ctx := context.Background()
	first, _ := s.Begin(ctx, "b1", "f1")
	_ = s.Complete(ctx, first, idempotency.Outcome{Status: 202, Body: []byte("one")})
	pending, _ := s.Begin(ctx, "b2", "f2")
	claims, errs, err := s.BeginMany(ctx, []string{"b1", "b2", "b3"}, []string{"f1", "f2", "f3"})
	if err != nil {
		t.Fatal(err)
	}
	if claims[0].Replay == nil || string(claims[0].Replay.Body) != "one" {
		t.Fatalf("b1 %+v %v", claims[0], errs[0])
	}
	if !errors.Is(errs[1], idempotency.ErrInProgress) {
		t.Fatalf("b2 %v", errs[1])
	}
	if !claims[2].Owned {
		t.Fatalf("b3 %+v", claims[2])
	}
	if err := s.CompleteMany(ctx, claims, make([]idempotency.Outcome, 3)); err != nil {
		t.Fatal(err)
	}
	_ = s.AbortMany(ctx, []idempotency.Claim{pending})
	again, errs, _ := s.BeginMany(ctx, []string{"b2", "b3"}, []string{"f2", "f3"})
	if !again[0].Owned || again[1].Replay == nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("after complete/abort: %+v %v", again, errs)
	}
}
