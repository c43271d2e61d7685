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

// The record a lock guards is what its last holder stored; a holder whose
// lock expired and was taken by another cannot overwrite the newer record.
func TestARecordIsNotOverwrittenByAnEarlierHolder(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	l := fencedlock.New(rdb, prefix)
	ctx := context.Background()

	if _, found, err := l.Load(ctx, "enrol:S1"); err != nil || found {
		t.Fatalf("record before any store: found %v, err %v", found, err)
	}
	a, err := l.Obtain(ctx, "enrol:S1", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, []byte("a2")); err != nil { // the same holder may store again
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // a stalls past its TTL
	b, err := l.Obtain(ctx, "enrol:S1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v, found, err := l.Load(ctx, "enrol:S1"); err != nil || !found || string(v) != "a2" {
		t.Fatalf("b reads %q (found %v, err %v), want a's last record a2", v, found, err)
	}
	if err := b.Store(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, []byte("a3")); !errors.Is(err, fencedlock.ErrStale) {
		t.Fatalf("store by the expired holder: %v, want ErrStale", err)
	}
	if v, _, _ := l.Load(ctx, "enrol:S1"); string(v) != "b" {
		t.Fatalf("record %q after the stale store, want b", v)
	}
}
