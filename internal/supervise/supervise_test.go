package supervise_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eprostream/eprostream/internal/supervise"
)

// A group whose run fails is built and run again, also when a rebuild
// fails; every restart is counted; the end of ctx ends Run with nil.
func TestAFailedGroupIsBuiltAndRunAgain(t *testing.T) {
	reg := prometheus.NewRegistry()
	restarts, err := supervise.NewRestarts(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var builds, runs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- supervise.Run(ctx, supervise.Config{Name: "subject", First: time.Millisecond, Max: 5 * time.Millisecond},
			supervise.Deps{Restarts: restarts}, func() (func(context.Context) error, error) {
				if builds.Add(1) == 3 {
					return nil, errors.New("kafka: broker not connected") // a rebuild during the outage
				}
				return func(ctx context.Context) error {
					if runs.Add(1) < 4 {
						return errors.New("could not commit message: broker not connected")
					}
					<-ctx.Done()
					return nil
				}, nil
			})
	}()
	for runs.Load() < 4 {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v after %d runs", err, runs.Load())
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if b := builds.Load(); b != 5 {
		t.Fatalf("%d builds, want 5 (the first, three after failed runs, one after the failed rebuild)", b)
	}
	if n := testutil.ToFloat64(restarts.WithLabelValues("subject")); n != 4 {
		t.Fatalf("restart metric %v, want 4", n)
	}
}

// A configuration that cannot work is reported at once, not retried.
func TestTheFirstBuildsErrorIsReturned(t *testing.T) {
	want := errors.New("rules: bad rule set")
	err := supervise.Run(context.Background(), supervise.Config{Name: "subject"}, supervise.Deps{},
		func() (func(context.Context) error, error) { return nil, want })
	if !errors.Is(err, want) {
		t.Fatalf("Run: %v, want %v", err, want)
	}
}

// The collectors of a group built again replace those of the one before.
func TestReplacingSwapsAGroupsCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := prometheus.NewCounter(prometheus.CounterOpts{Name: "eprostream_intake_clean_total", Help: "h"})
	second := prometheus.NewCounter(prometheus.CounterOpts{Name: "eprostream_intake_clean_total", Help: "h"})
	if err := supervise.Replacing(reg).Register(first); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(second); err == nil {
		t.Fatal("a plain second registration succeeded: the test shows nothing")
	}
	if err := supervise.Replacing(reg).Register(second); err != nil {
		t.Fatalf("replacing registration: %v", err)
	}
	second.Add(3)
	if n, err := testutil.GatherAndCount(reg, "eprostream_intake_clean_total"); err != nil || n != 1 {
		t.Fatalf("%d series (err %v), want 1", n, err)
	}
	if v := testutil.ToFloat64(second); v != 3 {
		t.Fatal(v)
	}
	mfs, _ := reg.Gather()
	if got := mfs[0].GetMetric()[0].GetCounter().GetValue(); got != 3 {
		t.Fatalf("gathered %v, want the new collector's 3", got)
	}
}

// While a failed group waits for its restart, Health says so (for
// /readyz); once it runs again, Health is clear.
func TestHealthIsDownUntilTheRestart(t *testing.T) {
	health := &supervise.Health{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	checked, failed, again := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	go func() {
		_ = supervise.Run(ctx, supervise.Config{Name: "warehouse", First: 300 * time.Millisecond, Max: time.Second},
			supervise.Deps{Health: health}, func() (func(context.Context) error, error) {
				return func(ctx context.Context) error {
					if runs.Add(1) == 1 {
						<-checked // the first run fails only after the check below
						close(failed)
						return errors.New("kafka: broker not connected")
					}
					close(again)
					<-ctx.Done()
					return nil
				}, nil
			})
	}()
	if err := health.Check(ctx); err != nil {
		t.Fatalf("before any failure: %v", err)
	}
	close(checked)
	<-failed
	deadline := time.Now().Add(250 * time.Millisecond)
	var down error
	for down == nil && time.Now().Before(deadline) {
		down = health.Check(ctx)
		time.Sleep(5 * time.Millisecond)
	}
	if down == nil || !strings.Contains(down.Error(), "warehouse") {
		t.Fatalf("while waiting for the restart: %v, want the group named", down)
	}
	<-again
	if err := health.Check(ctx); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
