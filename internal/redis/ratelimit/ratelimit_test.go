package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/redis/ratelimit"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestSharedLimitAcrossLimiters(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	cfg := ratelimit.Config{PerKey: 10, PerKeyBurst: 10, Overall: 1000}
	a, err := ratelimit.New(rdb, prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ratelimit.New(rdb, prefix, cfg) // a second gateway
	ctx := context.Background()
	allowed := 0
	start := time.Now()
	for i := 0; i < 30; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		d, err := l.Allow(ctx, "k1", 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		} else if d.RetryAfter <= 0 || d.Local {
			t.Fatalf("refusal without Retry-After or decided locally: %+v", d)
		}
	}
	// burst 10, plus what refilled at 10/s during the loop
	if most := 10 + int(10*time.Since(start).Seconds()) + 1; allowed < 10 || allowed > most {
		t.Fatalf("allowed %d of 30 with a burst of 10, want 10..%d", allowed, most)
	}
	if d, _ := a.Allow(ctx, "k2", 0, 1); !d.Allowed {
		t.Fatal("another key is limited by k1's use")
	}
}

func TestOverallLimit(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	l, _ := ratelimit.New(rdb, prefix, ratelimit.Config{PerKey: 100, Overall: 5})
	ctx := context.Background()
	refused := 0
	for i := range 10 {
		d, _ := l.Allow(ctx, string(rune('a'+i)), 0, 1)
		if !d.Allowed {
			refused++
			if !d.Overall {
				t.Fatalf("refused by the key limit: %+v", d)
			}
		}
	}
	if refused < 4 {
		t.Fatalf("overall limit 5/s refused %d of 10", refused)
	}
}

func TestLocalFallbackWhenRedisIsDown(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	gone := redis.NewClient(rdb.Options())
	_ = gone.Close()
	l, _ := ratelimit.New(gone, prefix, ratelimit.Config{PerKey: 20, FallbackShare: 0.5})
	allowed := 0
	start := time.Now()
	for range 40 {
		d, err := l.Allow(context.Background(), "k", 0, 1)
		if err == nil || !d.Local {
			t.Fatalf("decision with Redis down: %+v %v", d, err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if most := 10 + int(10*time.Since(start).Seconds()) + 1; allowed < 10 || allowed > most { // half of the burst of 20
		t.Fatalf("fallback allowed %d, want 10..%d", allowed, most)
	}
}

func TestAllowManyTakesEachKeyOnce(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	l, _ := ratelimit.New(rdb, prefix, ratelimit.Config{PerKey: 10, Overall: 15})
	reqs := []ratelimit.Request{}
	for i := range 12 {
		reqs = append(reqs, ratelimit.Request{Key: "a", N: 1}, ratelimit.Request{Key: "b", N: 1 + i%2})
	}
	got, err := l.AllowMany(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	total, overall := 0, 0
	for i, d := range got {
		if d.Allowed {
			perKey[reqs[i].Key] += reqs[i].N
			total += reqs[i].N
		} else if d.RetryAfter <= 0 {
			t.Fatalf("refusal %d without Retry-After: %+v", i, d)
		}
		if d.Overall {
			overall++
		}
	}
	if perKey["a"] > 10 || perKey["b"] > 10 || total > 15 || total < 14 || overall == 0 {
		t.Fatalf("admitted %v (total %d, %d refused overall)", perKey, total, overall)
	}
}
