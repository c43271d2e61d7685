package hotcache_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/redis/hotcache"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// With Redis unreachable, Get answers from the store, one query per key at
// a time within the process, and counts fallbacks.
func TestRedisDownFallsBackToStore(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	ctx := testContext(t)
	c := newCache(t, down, "eprostream:test:", hotcache.Config[string]{})

	// The store answers only once every request is under way, so all of
	// them join the first one's lookup.
	const n = 50
	var started sync.WaitGroup
	started.Add(n)
	var queries atomic.Int64
	load := func(ctx context.Context) (string, error) {
		queries.Add(1)
		started.Wait()
		time.Sleep(200 * time.Millisecond)
		return hotValue, nil
	}
	vals, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			started.Done()
			vals[i], errs[i] = c.Get(ctx, hotKey, load)
		})
	}
	wg.Wait()
	checkAll(t, vals, errs)
	if q := queries.Load(); q != 1 {
		t.Fatalf("%d concurrent requests with Redis down queried the store %d times, want 1", n, q)
	}
	s := c.Stats()
	if s.Fallbacks != n || s.RedisErrors == 0 || s.Hits+s.Misses != 0 {
		t.Fatalf("stats %+v, want %d fallbacks and Redis errors", s, n)
	}
	if v, err := c.Get(ctx, hotKey, load); v != hotValue || err != nil {
		t.Fatalf("later Get: %q, %v", v, err)
	}
	if s := c.Stats(); s.Fallbacks != n+1 || s.Loads != 2 {
		t.Fatalf("stats %+v, want every lookup served by the store", s)
	}
}
