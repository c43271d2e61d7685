// Package supervise keeps a processor group running through outages: when
// the group's Run fails (a Kafka broker gone long enough that goka gives up
// on a commit or a produce, a rebalance that errors), the group is built
// anew and started again after a backoff, instead of ending the process.
//
// A goka.Processor cannot be run twice, so the unit of restart is whatever
// Build returns: a fresh processor (and, for the warehouse, its sink); the
// caller's build discards a local table the failed run may have written
// ahead of Kafka. Nothing is lost by a restart: offsets are
// committed only after their effects are in Kafka or ClickHouse (ordered
// commits), so the new incarnation resumes at the first record whose effect
// is not stored, and the groups' replay detection keeps that exact.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/internal/logging"
)

// Config says how a group is restarted.
type Config struct {
	Name string // the group, for logs and the metric
	// First and Max bound the wait before a restart: it doubles from First
	// (default 1 s) up to Max (default 30 s) while restarts keep failing,
	// and starts again from First after a run that lasted Healthy (default
	// 1 min).
	First, Max, Healthy time.Duration
}

// Deps are the supervisor's logger, metric and health record (all optional).
type Deps struct {
	Log      *slog.Logger
	Restarts *prometheus.CounterVec // labelled by group; see NewRestarts
	Health   *Health
}

// Health records which supervised groups are running, for /readyz.
type Health struct {
	mu   sync.Mutex
	down map[string]string // group → why
}

func (h *Health) set(group string, why error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down == nil {
		h.down = map[string]string{}
	}
	if why == nil {
		delete(h.down, group)
	} else {
		h.down[group] = why.Error()
	}
}

// Check returns an error naming the groups waiting to be restarted.
func (h *Health) Check(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.down) == 0 {
		return nil
	}
	names := make([]string, 0, len(h.down))
	for g := range h.down {
		names = append(names, g)
	}
	slices.Sort(names)
	return fmt.Errorf("groups restarting after a failure: %s (last error of %s: %s)",
		strings.Join(names, ", "), names[0], h.down[names[0]])
}

// NewRestarts returns eprostream_group_restarts_total, registered with reg
// (nil: not registered).
func NewRestarts(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eprostream_group_restarts_total",
		Help: "Processor groups built and started again after their run failed.",
	}, []string{"group"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run builds the group and runs it until ctx ends. An error from the first
// build is returned (the configuration is wrong); later failures, of a run
// or of a rebuild, are logged and retried. It returns nil when ctx ends.
func Run(ctx context.Context, cfg Config, deps Deps, build func() (func(context.Context) error, error)) error {
	if cfg.First <= 0 {
		cfg.First = time.Second
	}
	if cfg.Max <= 0 {
		cfg.Max = 30 * time.Second
	}
	if cfg.Healthy <= 0 {
		cfg.Healthy = time.Minute
	}
	log := logging.OrDiscard(deps.Log)
	wait := &backoff.ExponentialBackOff{InitialInterval: cfg.First, RandomizationFactor: 0.2,
		Multiplier: 2, MaxInterval: cfg.Max}
	wait.Reset()
	run, err := build()
	if err != nil {
		return err
	}
	for {
		began := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) >= cfg.Healthy {
			wait.Reset()
		}
		if err == nil {
			err = errors.New("the group stopped by itself")
		}
		deps.Health.set(cfg.Name, err)
		for {
			pause := wait.NextBackOff()
			log.Error("processor group failed; building it again", "group", cfg.Name, "err", err, "restart_in", pause.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			if deps.Restarts != nil {
				deps.Restarts.WithLabelValues(cfg.Name).Inc()
			}
			if run, err = build(); err == nil {
				break
			}
		}
		deps.Health.set(cfg.Name, nil)
		log.Info("processor group restarted", "group", cfg.Name)
	}
}

// Replacing returns a Registerer for groups that are built again: a
// collector registered already (by the group's previous incarnation) is
// replaced by the new one, so the metrics follow the running group. Give
// it to one group's constructor only: a collector of another group with
// the same name and labels would be replaced too.
func Replacing(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return replacing{reg}
}

type replacing struct{ prometheus.Registerer }

func (r replacing) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		r.Registerer.Unregister(are.ExistingCollector)
		return r.Registerer.Register(c)
	}
	return err
}

func (r replacing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}
