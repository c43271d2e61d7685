package hotcache_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/redis/hotcache"
	"github.com/eprostream/eprostream/internal/testenv"
)

const (
	hotKey   = "SITE-007"
	hotValue = "dashboard of SITE-007"
)

// hotStore is slow enough that every request of a stampede arrives while
// the rebuild runs; the assertions do not depend on it.
func hotStore() *store {
	return &store{delay: 200 * time.Millisecond, data: map[string]string{hotKey: hotValue}}
}

func hotConfig() hotcache.Config[string] {
	return hotcache.Config[string]{TTL: 10 * time.Minute, LockTTL: 10 * time.Second, Wait: 20 * time.Second, Poll: 10 * time.Millisecond}
}

// expire warms the hot key, then expires it.
func expire(t *testing.T, ctx context.Context, rdb *redis.Client, prefix string, c *hotcache.Cache[string]) {
	t.Helper()
	warm := hotStore()
	if _, err := c.Get(ctx, hotKey, warm.loader(hotKey)); err != nil {
		t.Fatal(err)
	}
	if err := rdb.PExpire(ctx, valueKey(prefix, hotKey), time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(ctx, valueKey(prefix, hotKey)).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("hot key did not expire")
		}
		time.Sleep(time.Millisecond)
	}
}

func checkAll(t *testing.T, vals []string, errs []error) {
	t.Helper()
	for i := range vals {
		if errs[i] != nil || vals[i] != hotValue {
			t.Fatalf("request %d: %q, %v", i, vals[i], errs[i])
		}
	}
}

// 500 requests for an expired hot key, through two caches with their own
// Redis clients as two processes would, rebuild it once.
func TestExpiredHotKeyRebuiltOnceAcrossInstances(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	other := redis.NewClient(rdb.Options())
	defer other.Close()
	a := newCache(t, rdb, prefix, hotConfig())
	b := newCache(t, other, prefix, hotConfig())
	expire(t, ctx, rdb, prefix, a)

	st := hotStore()
	vals, errs := concurrently(ctx, []*hotcache.Cache[string]{a, b}, 500, hotKey, st.loader(hotKey))
	checkAll(t, vals, errs)
	if q := st.queries.Load(); q != 1 {
		t.Fatalf("500 requests queried the store %d times, want 1", q)
	}
	if loads := a.Stats().Loads + b.Stats().Loads; loads != 2 { // the warm-up and the rebuild
		t.Fatalf("loads %d, want 2", loads)
	}
	assertAllKeysExpire(t, rdb, prefix)
}

const helperEnv = "HOTCACHE_STAMPEDE_HELPER" // prefix,requests

// TestStampedeHelper is the second process of
// TestExpiredHotKeyRebuiltOnceAcrossProcesses; run on its own it does nothing.
func TestStampedeHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	prefix, reqs, _ := strings.Cut(spec, ",")
	var n int
	if _, err := fmt.Sscan(reqs, &n); err != nil {
		t.Fatal(err)
	}
	rdb := connect.Redis(testenv.Config(t))
	defer rdb.Close()
	ctx := testContext(t)
	c := newCache(t, rdb, prefix, hotConfig())
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	st := hotStore()
	vals, errs := concurrently(ctx, []*hotcache.Cache[string]{c}, n, hotKey, st.loader(hotKey))
	checkAll(t, vals, errs)
	fmt.Printf("queries=%d\n", st.queries.Load())
}

// The same, with the second cache in a second OS process.
func TestExpiredHotKeyRebuiltOnceAcrossProcesses(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	c := newCache(t, rdb, prefix, hotConfig())
	expire(t, ctx, rdb, prefix, c)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStampedeHelper$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperEnv+"="+prefix+",250")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var out []string
	next := func(prefix string) string {
		for lines.Scan() {
			out = append(out, lines.Text())
			if strings.HasPrefix(lines.Text(), prefix) {
				return lines.Text()
			}
		}
		_ = cmd.Wait()
		t.Fatalf("helper process ended without %q; output %q, stderr %s", prefix, out, stderr.String())
		return ""
	}
	next("ready")
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	st := hotStore()
	vals, errs := concurrently(ctx, []*hotcache.Cache[string]{c}, 250, hotKey, st.loader(hotKey))
	checkAll(t, vals, errs)
	var theirs int64
	if _, err := fmt.Sscanf(next("queries="), "queries=%d", &theirs); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v; output %q, stderr %s", err, out, stderr.String())
	}
	if total := st.queries.Load() + theirs; total != 1 {
		t.Fatalf("500 requests in two processes queried the store %d times (here %d, there %d), want 1",
			total, st.queries.Load(), theirs)
	}
}

// A rebuilder that died holding the lock delays the key by the lock's TTL;
// then a waiter takes the lock and rebuilds.
func TestDeadRebuilderFreesKeyAfterLockTTL(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	c := newCache(t, rdb, prefix, hotConfig())
	if err := rdb.Set(ctx, lockKey(prefix, hotKey), "token-of-a-dead-process", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	st := hotStore()
	vals, errs := concurrently(ctx, []*hotcache.Cache[string]{c}, 50, hotKey, st.loader(hotKey))
	checkAll(t, vals, errs)
	if q := st.queries.Load(); q != 1 {
		t.Fatalf("store queried %d times, want 1", q)
	}
	if s := c.Stats(); s.WaitTimeouts != 0 {
		t.Fatalf("stats %+v, want the lock to expire before Wait", s)
	}
}

// A rebuild elsewhere that takes longer than Wait delays readers by Wait,
// not more, and does not fail them.
func TestStuckRebuildElsewhereQueriesStoreAfterWait(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := testContext(t)
	cfg := hotConfig()
	cfg.Wait = 200 * time.Millisecond
	c := newCache(t, rdb, prefix, cfg)
	if err := rdb.Set(ctx, lockKey(prefix, hotKey), "token-of-a-stuck-process", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	st := hotStore()
	vals, errs := concurrently(ctx, []*hotcache.Cache[string]{c}, 50, hotKey, st.loader(hotKey))
	checkAll(t, vals, errs)
	if s := c.Stats(); s.WaitTimeouts != 1 || s.Loads != 1 || st.queries.Load() != 1 {
		t.Fatalf("stats %+v, %d queries; want one wait timeout and one load", s, st.queries.Load())
	}
	if v := rdb.Get(ctx, lockKey(prefix, hotKey)).Val(); v != "token-of-a-stuck-process" {
		t.Fatalf("the other process's lock was touched: %q", v)
	}
	if rdb.Exists(ctx, valueKey(prefix, hotKey)).Val() != 1 {
		t.Fatal("the value loaded after Wait was not kept")
	}
}
