// Package ratelimit enforces the gateway's request limits: one per API key
// and one over all clients, shared by every gateway instance through Redis
// (GCRA, by go-redis/redis_rate).
//
// When Redis cannot be reached, ingest must go on: each instance then falls
// back to a local token bucket (golang.org/x/time/rate) per key and overall,
// at Fallback's share of the shared limits. With n gateways a share of 1/n
// keeps the total where it was; the default share is 1/2, for two instances.
// A decision made locally says so (Decision.Local) and is counted in metrics.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Config sets the limits, in submissions per second.
type Config struct {
	PerKey      int // default limit of one API key
	PerKeyBurst int
	Overall     int // all keys together; 0 disables
	// FallbackShare of each limit applies locally while Redis is down.
	FallbackShare float64
	// Timeout bounds each Redis round trip; past it the local limit decides.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.PerKeyBurst <= 0 {
		c.PerKeyBurst = c.PerKey
	}
	if c.FallbackShare <= 0 || c.FallbackShare > 1 {
		c.FallbackShare = 0.5
	}
	if c.Timeout <= 0 {
		c.Timeout = 100 * time.Millisecond
	}
}

// Validate says what is wrong with c.
func (c Config) Validate() error {
	if c.PerKey <= 0 {
		return fmt.Errorf("ratelimit: per-key limit %d must be positive", c.PerKey)
	}
	if c.Overall < 0 {
		return fmt.Errorf("ratelimit: overall limit %d must not be negative", c.Overall)
	}
	return nil
}

// Decision is the outcome of one check.
type Decision struct {
	Allowed    bool
	Limit      int           // the limit that decided, per second
	Remaining  int           // submissions still allowed right now
	RetryAfter time.Duration // when !Allowed
	ResetAfter time.Duration // until the bucket is full again
	Local      bool          // decided by the local fallback
	Overall    bool          // the overall limit refused it
}

// Limiter is safe for concurrent use.
type Limiter struct {
	cfg    Config
	shared *redis_rate.Limiter
	prefix string

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

// New returns a limiter keeping its counters under prefix ("eprostream:{env}:").
func New(rdb redis.UniversalClient, prefix string, cfg Config) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg, shared: redis_rate.NewLimiter(rdb), prefix: prefix + "rate:", local: map[string]*rate.Limiter{}}, nil
}

// Allow takes n submissions from key's budget (perSec overrides the
// default when positive) and from the overall budget. err is only the
// reason a local decision was made; the decision is always usable.
func (l *Limiter) Allow(ctx context.Context, key string, perSec, n int) (Decision, error) {
	burst := perSec // a key's own limit has a burst of one second
	if perSec <= 0 {
		perSec, burst = l.cfg.PerKey, l.cfg.PerKeyBurst
	}
	perKey := redis_rate.Limit{Rate: perSec, Burst: burst, Period: time.Second}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	d, err := l.allowShared(ctx, "key:"+key, perKey, n)
	if err != nil {
		return l.allowLocal(key, perKey, n), err
	}
	if !d.Allowed || l.cfg.Overall == 0 {
		return d, nil
	}
	overall := redis_rate.Limit{Rate: l.cfg.Overall, Burst: l.cfg.Overall, Period: time.Second}
	o, err := l.allowShared(ctx, "overall", overall, n)
	if err != nil {
		return l.allowLocal(key, perKey, n), err
	}
	if !o.Allowed {
		o.Overall = true
		return o, nil
	}
	if o.Remaining < d.Remaining {
		d.Remaining = o.Remaining
	}
	return d, nil
}

func (l *Limiter) allowShared(ctx context.Context, key string, lim redis_rate.Limit, n int) (Decision, error) {
	res, err := l.shared.AllowN(ctx, l.prefix+key, lim, n)
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	return Decision{Allowed: res.Allowed >= n && n > 0, Limit: lim.Rate, Remaining: res.Remaining,
		RetryAfter: max(res.RetryAfter, 0), ResetAfter: max(res.ResetAfter, 0)}, nil
}

func (l *Limiter) allowLocal(key string, lim redis_rate.Limit, n int) Decision {
	share := l.cfg.FallbackShare
	now := time.Now()
	d := l.takeLocal("key:"+key, float64(lim.Rate)*share, int(math.Ceil(float64(lim.Burst)*share)), n, now)
	d.Limit = int(math.Ceil(float64(lim.Rate) * share))
	if !d.Allowed || l.cfg.Overall == 0 {
		return d
	}
	o := l.takeLocal("overall", float64(l.cfg.Overall)*share, int(math.Ceil(float64(l.cfg.Overall)*share)), n, now)
	if !o.Allowed {
		o.Overall = true
		o.Limit = int(math.Ceil(float64(l.cfg.Overall) * share))
		return o
	}
	return d
}

func (l *Limiter) bucket(name string, perSec float64, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.local[name]
	if !ok {
		b = rate.NewLimiter(rate.Limit(perSec), max(burst, 1))
		l.local[name] = b
	}
	return b
}

func (l *Limiter) takeLocal(name string, perSec float64, burst, n int, now time.Time) Decision {
	b := l.bucket(name, perSec, burst)
	d := Decision{Local: true}
	if b.AllowN(now, n) {
		d.Allowed = true
	} else {
		r := b.ReserveN(now, n)
		if r.OK() {
			d.RetryAfter = r.DelayFrom(now)
			r.CancelAt(now)
		} else {
			d.RetryAfter = time.Second
		}
	}
	d.Remaining = max(int(b.TokensAt(now)), 0)
	d.ResetAfter = time.Duration(float64(burst-d.Remaining) / max(perSec, 1) * float64(time.Second))
	return d
}
