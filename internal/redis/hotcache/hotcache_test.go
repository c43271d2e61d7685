package hotcache_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/redis/hotcache"
	"github.com/eprostream/eprostream/internal/testenv"
)

var siteID = regexp.MustCompile(`^SITE-[0-9]{3}$`)

func validSite(key string) error {
	if !siteID.MatchString(key) {
		return errors.New("site ids look like SITE-012")
	}
	return nil
}

// store is a backing store that counts its queries.
type store struct {
	queries atomic.Int64
	delay   time.Duration
	data    map[string]string // read-only once the test runs
}

func (s *store) loader(key string) hotcache.Loader[string] {
	return func(ctx context.Context) (string, error) {
		s.queries.Add(1)
		if s.delay > 0 {
			select {
			case <-time.After(s.delay):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		v, ok := s.data[key]
		if !ok {
			return "", hotcache.ErrNotFound
		}
		return v, nil
	}
}

const name = "site_dashboard"

func newCache(t testing.TB, rdb redis.UniversalClient, prefix string, cfg hotcache.Config[string]) *hotcache.Cache[string] {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = name
	}
	if cfg.Valid == nil {
		cfg.Valid = validSite
	}
	c, err := hotcache.New(rdb, prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func valueKey(prefix, key string) string { return prefix + "hot:" + name + ":val:" + key }
func lockKey(prefix, key string) string  { return prefix + "hot:" + name + ":lock:" + key }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// concurrently starts n Gets of key at once, spread over caches in turn,
// and returns their results.
func concurrently(ctx context.Context, caches []*hotcache.Cache[string], n int, key string, load hotcache.Loader[string]) ([]string, []error) {
	vals, errs := make([]string, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			vals[i], errs[i] = caches[i%len(caches)].Get(ctx, key, load)
		})
	}
	close(start)
	wg.Wait()
	return vals, errs
}

// assertAllKeysExpire fails when a key under prefix has no TTL.
func assertAllKeysExpire(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := testContext(t)
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if ttl := rdb.PTTL(ctx, iter.Val()).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", iter.Val(), ttl)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestGetReadsThrough(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	st := &store{data: map[string]string{"SITE-012": "3 open alerts"}}
	c := newCache(t, rdb, prefix, hotcache.Config[string]{TTL: time.Minute})

	for range 3 {
		v, err := c.Get(ctx, "SITE-012", st.loader("SITE-012"))
		if err != nil || v != "3 open alerts" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	s := c.Stats()
	if st.queries.Load() != 1 || s.Loads != 1 || s.Misses != 1 || s.Hits != 2 {
		t.Fatalf("store queried %d times, stats %+v; want 1 load, 1 miss, 2 hits", st.queries.Load(), s)
	}
	if r := s.HitRatio(); r < 0.66 || r > 0.67 {
		t.Fatalf("hit ratio %v, want 2/3", r)
	}
	if n := rdb.Exists(ctx, lockKey(prefix, "SITE-012")).Val(); n != 0 {
		t.Fatal("rebuild lock left behind")
	}
	assertAllKeysExpire(t, rdb, prefix)

	if err := c.Invalidate(ctx, "SITE-012"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "SITE-012", st.loader("SITE-012")); err != nil || st.queries.Load() != 2 {
		t.Fatalf("after Invalidate: %v, %d queries, want 2", err, st.queries.Load())
	}
}

// A failed load is returned, not cached, and frees the key for the next Get.
func TestLoadErrorIsNotCached(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	c := newCache(t, rdb, prefix, hotcache.Config[string]{})
	boom := errors.New("clickhouse: timeout")
	var calls atomic.Int64
	failing := func(context.Context) (string, error) { calls.Add(1); return "", boom }

	if _, err := c.Get(ctx, "SITE-001", failing); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "hotcache: ") {
		t.Fatalf("err %v, want hotcache: … wrapping %v", err, boom)
	}
	if n := rdb.Exists(ctx, valueKey(prefix, "SITE-001"), lockKey(prefix, "SITE-001")).Val(); n != 0 {
		t.Fatalf("%d keys left after a failed load, want none", n)
	}
	panicking := func(context.Context) (string, error) { calls.Add(1); panic("bug") }
	if _, err := c.Get(ctx, "SITE-001", panicking); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panicking loader: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("loader called %d times, want 2", calls.Load())
	}
}

// A caller that gives up gets its context's error; the lookup still
// completes for everyone else.
func TestCallerCancelDoesNotAbortLookup(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	c := newCache(t, rdb, prefix, hotcache.Config[string]{})
	release := make(chan struct{})
	var calls atomic.Int64
	slow := func(ctx context.Context) (string, error) {
		calls.Add(1)
		select {
		case <-release:
			return "ready", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	short, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { _, err := c.Get(short, "SITE-002", slow); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v, want context.Canceled", err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(ctx, valueKey(prefix, "SITE-002")).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned lookup never wrote its value")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, err := c.Get(ctx, "SITE-002", slow); v != "ready" || err != nil || calls.Load() != 1 {
		t.Fatalf("Get = %q, %v after %d loads; want the cached value, 1 load", v, err, calls.Load())
	}
}

func TestMetrics(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	reg := prometheus.NewRegistry()
	st := &store{data: map[string]string{"SITE-003": "x"}}
	c := newCache(t, rdb, prefix, hotcache.Config[string]{Registry: reg})
	other := newCache(t, rdb, prefix, hotcache.Config[string]{Name: "study_summary", Registry: reg})
	_, _ = c.Get(ctx, "SITE-003", st.loader("SITE-003"))
	_, _ = c.Get(ctx, "SITE-003", st.loader("SITE-003"))
	_, _ = c.Get(ctx, "nope", st.loader("nope"))
	_, _ = other.Get(ctx, "SITE-004", st.loader("SITE-004"))

	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += "," + l.GetName() + "=" + l.GetValue()
			}
			got[k] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"eprostream_hotcache_lookups_total,cache=site_dashboard,result=hit":         1,
		"eprostream_hotcache_lookups_total,cache=site_dashboard,result=miss":        1,
		"eprostream_hotcache_lookups_total,cache=site_dashboard,result=rejected":    1,
		"eprostream_hotcache_loads_total,cache=site_dashboard":                      1,
		"eprostream_hotcache_lookups_total,cache=study_summary,result=miss":         1,
		"eprostream_hotcache_lookups_total,cache=study_summary,result=negative_hit": 0,
		"eprostream_hotcache_lookups_total,cache=site_dashboard,result=fallback":    0,
		"eprostream_hotcache_redis_errors_total,cache=site_dashboard":               0,
		"eprostream_hotcache_wait_timeouts_total,cache=study_summary":               0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := hotcache.New(rdb, prefix, hotcache.Config[string]{Name: name, Valid: validSite, Registry: reg}); err == nil {
		t.Fatal("a second cache of the same name registered its metrics")
	}
}

func TestConfigValidate(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	for _, tc := range []struct {
		desc string
		cfg  hotcache.Config[string]
	}{
		{"no name", hotcache.Config[string]{Valid: validSite}},
		{"name with colon", hotcache.Config[string]{Name: "a:b", Valid: validSite}},
		{"no validator", hotcache.Config[string]{Name: name}},
		{"jitter too large", hotcache.Config[string]{Name: name, Valid: validSite, Jitter: 0.9}},
		{"negative jitter", hotcache.Config[string]{Name: name, Valid: validSite, Jitter: -0.1}},
		{"negative TTL", hotcache.Config[string]{Name: name, Valid: validSite, TTL: -time.Second}},
		{"poll beyond wait", hotcache.Config[string]{Name: name, Valid: validSite, Wait: time.Millisecond, Poll: time.Second}},
	} {
		if _, err := hotcache.New(rdb, "eprostream:test:", tc.cfg); err == nil {
			t.Errorf("%s: New accepted it", tc.desc)
		}
	}
	if _, err := hotcache.New(rdb, "", hotcache.Config[string]{Name: name, Valid: validSite}); err == nil {
		t.Error("New accepted an empty prefix")
	}
	if _, err := hotcache.New(rdb, "eprostream:test:", hotcache.Config[string]{Name: name, Valid: validSite}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestBytesCodecCopies(t *testing.T) {
	in := []byte("view")
	out, _ := hotcache.Bytes{}.Decode(in)
	out[0] = 'V'
	if string(in) != "view" {
		t.Fatal("Bytes.Decode shares memory with its input")
	}
}
