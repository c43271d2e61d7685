package fencedlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestFencesGrowAcrossHolders(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	l := fencedlock.New(rdb, prefix)
	ctx := context.Background()

	a, err := l.Obtain(ctx, "subject:S1", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Obtain(ctx, "subject:S1", time.Second); !errors.Is(err, fencedlock.ErrHeld) {
		t.Fatalf("second obtain while held: %v, want ErrHeld", err)
	}
	time.Sleep(300 * time.Millisecond) // a stalls past its TTL
	if held, err := a.Held(ctx); err != nil || held {
		t.Fatalf("a still held after its TTL: %v %v", held, err)
	}
	b, err := l.Obtain(ctx, "subject:S1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if b.Fence <= a.Fence {
		t.Fatalf("fence of the later holder %d is not above %d", b.Fence, a.Fence)
	}
	if err := a.Release(ctx); err != nil { // expired: not an error, and b keeps its lock
		t.Fatal(err)
	}
	if held, _ := b.Held(ctx); !held {
		t.Fatal("a's release removed b's lock")
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := l.Obtain(ctx, "subject:S1", time.Second)
	if err != nil {
		t.Fatalf("obtain after release: %v", err)
	}
	if c.Fence <= b.Fence {
		t.Fatalf("fence %d not above %d", c.Fence, b.Fence)
	}
	// The fencing counter has no TTL; the lock has one.
	if ttl := rdb.TTL(ctx, prefix+"fence:subject:S1").Val(); ttl != -1 {
		t.Fatalf("fence counter TTL %v, want none", ttl)
	}
	if ttl := rdb.PTTL(ctx, prefix+"lock:subject:S1").Val(); ttl <= 0 {
		t.Fatalf("lock TTL %v, want one", ttl)
	}
}
