package hotcache_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/redis/hotcache"
	"github.com/eprostream/eprostream/internal/testenv"
)

// 100 keys written together with one base TTL expire spread over the
// jitter window, all within it.
func TestTTLsOfKeysWrittenTogetherAreSpread(t *testing.T) {
	const (
		keys   = 100
		base   = time.Hour
		jitter = 0.2
	)
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	st := &store{data: map[string]string{}}
	for i := range keys {
		st.data[fmt.Sprintf("SITE-%03d", i)] = "view"
	}
	c := newCache(t, rdb, prefix, hotcache.Config[string]{TTL: base, Jitter: jitter})

	began := time.Now()
	var wg sync.WaitGroup
	for key := range st.data {
		wg.Go(func() {
			if _, err := c.Get(ctx, key, st.loader(key)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ttls := make([]time.Duration, 0, keys)
	for key := range st.data {
		ttls = append(ttls, rdb.PTTL(ctx, valueKey(prefix, key)).Val())
	}
	elapsed := time.Since(began)

	window := time.Duration(2 * jitter * float64(base))
	lo, hi := base-window/2-elapsed-time.Millisecond, base+window/2
	slices.Sort(ttls)
	for _, ttl := range ttls {
		if ttl < lo || ttl > hi {
			t.Fatalf("TTL %v outside [%v, %v]", ttl, lo, hi)
		}
	}
	if span := ttls[keys-1] - ttls[0]; span < window/2 {
		t.Fatalf("TTLs span %v (%v … %v), want at least half the jitter window %v", span, ttls[0], ttls[keys-1], window)
	}
	if distinct := len(slices.Compact(ttls)); distinct < keys*9/10 {
		t.Fatalf("only %d distinct TTLs among %d keys", distinct, keys)
	}
	t.Logf("%d TTLs from %v to %v (window %v ± %v)", keys, ttls[0], ttls[keys-1], base, window/2)
}
