package hotcache

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts what a Cache did since it was made. Every Get of a valid key
// is exactly one of Hits, NegativeHits, Misses or Fallbacks.
type Stats struct {
	Hits         uint64 // a value was in Redis
	NegativeHits uint64 // a "not found" was in Redis
	Misses       uint64 // nothing was in Redis: rebuilt here or waited for
	Fallbacks    uint64 // Redis failed; served by the store directly
	Rejected     uint64 // invalid keys, refused before any lookup
	Loads        uint64 // loader calls, i.e. backing-store queries
	WaitTimeouts uint64 // waits for another rebuild that ran past Wait
	RedisErrors  uint64 // failed Redis round trips of any kind
}

// HitRatio is the share of lookups that Redis answered, "not found"
// included; 0 before the first lookup.
func (s Stats) HitRatio() float64 {
	all := s.Hits + s.NegativeHits + s.Misses + s.Fallbacks
	if all == 0 {
		return 0
	}
	return float64(s.Hits+s.NegativeHits) / float64(all)
}

// counters are the one record of Stats; Prometheus reads them too.
type counters struct {
	hits, negativeHits, misses, fallbacks, rejected atomic.Uint64
	loads, waitTimeouts, redisErrors                atomic.Uint64
}

// outcome is how a lookup was answered.
type outcome int

const (
	hit outcome = iota
	negativeHit
	miss
	fallback
)

func (n *counters) count(o outcome) {
	switch o {
	case hit:
		n.hits.Add(1)
	case negativeHit:
		n.negativeHits.Add(1)
	case miss:
		n.misses.Add(1)
	case fallback:
		n.fallbacks.Add(1)
	}
}

func (n *counters) stats() Stats {
	return Stats{
		Hits: n.hits.Load(), NegativeHits: n.negativeHits.Load(), Misses: n.misses.Load(),
		Fallbacks: n.fallbacks.Load(), Rejected: n.rejected.Load(), Loads: n.loads.Load(),
		WaitTimeouts: n.waitTimeouts.Load(), RedisErrors: n.redisErrors.Load(),
	}
}

// register exports the counters as eprostream_hotcache_*{cache=name}. On
// error nothing stays registered.
func (n *counters) register(reg prometheus.Registerer, name string) error {
	if reg == nil {
		return nil
	}
	counter := func(metric, help string, labels prometheus.Labels, v *atomic.Uint64) prometheus.Collector {
		labels["cache"] = name
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "hotcache", Name: metric, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(v.Load()) })
	}
	const lookupHelp = "Lookups by result: hit, negative_hit (cached not-found), miss, " +
		"fallback (Redis unavailable, served by the store), rejected (invalid key)."
	lookup := func(result string, v *atomic.Uint64) prometheus.Collector {
		return counter("lookups_total", lookupHelp, prometheus.Labels{"result": result}, v)
	}
	cols := []prometheus.Collector{
		lookup("hit", &n.hits), lookup("negative_hit", &n.negativeHits), lookup("miss", &n.misses),
		lookup("fallback", &n.fallbacks), lookup("rejected", &n.rejected),
		counter("loads_total", "Loader calls (backing-store queries).", prometheus.Labels{}, &n.loads),
		counter("wait_timeouts_total", "Waits for another process's rebuild that ran past Wait.",
			prometheus.Labels{}, &n.waitTimeouts),
		counter("redis_errors_total", "Failed Redis round trips.", prometheus.Labels{}, &n.redisErrors),
	}
	for i, col := range cols {
		if err := reg.Register(col); err != nil {
			for _, done := range cols[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("hotcache: %s: register metrics: %w", name, err)
		}
	}
	return nil
}
