package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec   // by route, status
	latency  *prometheus.HistogramVec // by route
	items    *prometheus.CounterVec   // submissions by outcome
	degraded *prometheus.CounterVec   // decisions made without Redis, by part
	replayed prometheus.Counter
	limited  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "requests_total", Help: "HTTP requests by route and status."}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "request_seconds", Help: "Time to answer, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "submissions_total", Help: "Submissions by outcome (accepted, replayed, invalid, refused, unavailable)."},
			[]string{"outcome"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "redis_degraded_total", Help: "Requests served without Redis for a part (ratelimit, idempotency)."},
			[]string{"part"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "idempotent_replays_total", Help: "Answers replayed from a stored outcome."}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "gateway",
			Name: "rate_limited_total", Help: "Requests answered 429."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.items, m.degraded, m.replayed, m.limited} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("gateway: metrics: %w", err)
			}
		}
	}
	return m, nil
}
