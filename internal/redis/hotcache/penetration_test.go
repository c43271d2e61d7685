package hotcache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/redis/hotcache"
	"github.com/eprostream/eprostream/internal/testenv"
)

// commandCounter counts the commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

func TestBadKeyReachesNeitherRedisNorStore(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	counted := redis.NewClient(rdb.Options())
	defer counted.Close()
	hook := &commandCounter{}
	counted.AddHook(hook)
	st := &store{data: map[string]string{}}
	c := newCache(t, counted, prefix, hotcache.Config[string]{})

	for _, key := range []string{"", "SITE-12", "site-012", "SITE-012:lock", "SITE-0123", "*", "SITE-012\n"} {
		if _, err := c.Get(ctx, key, st.loader(key)); !errors.Is(err, hotcache.ErrBadKey) {
			t.Errorf("Get(%q): %v, want ErrBadKey", key, err)
		}
	}
	if hook.n.Load() != 0 || st.queries.Load() != 0 {
		t.Fatalf("invalid keys sent %d Redis commands and %d store queries, want none", hook.n.Load(), st.queries.Load())
	}
	if s := c.Stats(); s.Rejected != 7 || s.Misses+s.Hits+s.Fallbacks != 0 {
		t.Fatalf("stats %+v, want 7 rejected and no lookups", s)
	}
}

// 10,000 lookups of a site that does not exist query the store once.
func TestMissingKeyQueriesStoreOncePerNegativeTTL(t *testing.T) {
	const lookups = 10_000
	for _, mode := range []string{"sequential", "concurrent"} {
		t.Run(mode, func(t *testing.T) {
			rdb, prefix := testenv.Redis(t)
			ctx := testContext(t)
			st := &store{data: map[string]string{}}
			negTTL := 30 * time.Second
			c := newCache(t, rdb, prefix, hotcache.Config[string]{NegativeTTL: negTTL})

			var notFound atomic.Int64
			get := func() {
				_, err := c.Get(ctx, "SITE-404", st.loader("SITE-404"))
				if errors.Is(err, hotcache.ErrNotFound) {
					notFound.Add(1)
				} else {
					t.Errorf("Get: %v, want ErrNotFound", err)
				}
			}
			if mode == "sequential" {
				for range lookups {
					get()
				}
			} else {
				const workers = 100
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for range lookups / workers {
							get()
						}
					})
				}
				wg.Wait()
			}
			if q := st.queries.Load(); q != 1 || notFound.Load() != lookups {
				t.Fatalf("%d lookups queried the store %d times (%d not found), want once", lookups, q, notFound.Load())
			}
			s := c.Stats()
			if s.Loads != 1 || s.NegativeHits+s.Misses != lookups || s.NegativeHits < lookups/2 {
				t.Fatalf("stats %+v", s)
			}
			if ttl := rdb.PTTL(ctx, valueKey(prefix, "SITE-404")).Val(); ttl <= 0 || ttl > negTTL {
				t.Fatalf("not-found entry TTL %v, want (0, %v]", ttl, negTTL)
			}
			assertAllKeysExpire(t, rdb, prefix)
		})
	}
}

// Once the "not found" expires the store is asked again, so an entity
// created meanwhile appears within NegativeTTL.
func TestNotFoundExpires(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	st := &store{data: map[string]string{}}
	c := newCache(t, rdb, prefix, hotcache.Config[string]{NegativeTTL: 100 * time.Millisecond})

	if _, err := c.Get(ctx, "SITE-404", st.loader("SITE-404")); !errors.Is(err, hotcache.ErrNotFound) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(ctx, valueKey(prefix, "SITE-404")).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("not-found entry did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Get(ctx, "SITE-404", st.loader("SITE-404")); !errors.Is(err, hotcache.ErrNotFound) {
		t.Fatal(err)
	}
	if q := st.queries.Load(); q != 2 {
		t.Fatalf("store queried %d times, want 2 (once per NegativeTTL)", q)
	}
}
