package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eapache/go-resiliency/retrier"

	"github.com/eprostream/eprostream/codecs"
)

// ErrStopped: Enqueue after Run returned.
var ErrStopped = errors.New("webhooks: deliverer stopped")

// Deliverer sends alerts to the subscriptions of a Store. Enqueue is safe
// for concurrent use; Run must be running for alerts to go out.
type Deliverer struct {
	cfg    Config
	store  *Store
	owners Owners
	log    *slog.Logger
	http   *http.Client
	retry  *retrier.Retrier

	started chan struct{} // closed by Run
	loadMu  sync.Mutex    // one reload at a time
	wg      sync.WaitGroup

	mu       sync.Mutex
	runCtx   context.Context
	stopped  bool
	subs     []record // the latest snapshot from Redis
	loadedAt time.Time
	workers  map[string]*worker // by subscription id
}

// New returns a Deliverer; call Run to start it.
func New(cfg Config, deps Deps) (*Deliverer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.setDefaults(); err != nil {
		return nil, err
	}
	// go-resiliency's retrier: capped exponential backoff with jitter, and
	// its sleep ends with ctx. Attempts-1 waits make Attempts tries.
	r := retrier.New(retrier.LimitedExponentialBackoff(cfg.Attempts-1, cfg.InitialBackoff, cfg.MaxBackoff), nil)
	r.SetJitter(0.2)
	return &Deliverer{cfg: cfg, store: deps.Store, owners: deps.Owners, log: deps.Log, http: deps.HTTP, retry: r,
		started: make(chan struct{}), workers: map[string]*worker{}}, nil
}

// Run delivers until ctx ends, reloading subscriptions every Refresh. On
// return no request is in flight; alerts still queued were not settled and
// come again with the next run (see the package doc).
func (d *Deliverer) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.runCtx != nil {
		d.mu.Unlock()
		return errors.New("webhooks: Run called twice")
	}
	d.runCtx = ctx
	d.mu.Unlock()
	close(d.started)
	d.reload(ctx)
	tick := time.NewTicker(d.cfg.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			d.stopped = true
			d.mu.Unlock()
			d.wg.Wait()
			d.http.CloseIdleConnections()
			return nil
		case <-tick.C:
			d.reload(ctx)
		}
	}
}

func (d *Deliverer) reload(ctx context.Context) {
	if err := d.refresh(ctx, true); err != nil && ctx.Err() == nil {
		d.log.Warn("webhooks: reload subscriptions; delivering to the ones known", "err", err)
	}
}

// Enqueue queues a for every subscription whose filters match it and
// returns without waiting for delivery. settled (may be nil) is called once
// a is delivered or dead-lettered for every one of them, at once when none
// matches; it runs on a delivery goroutine and must not block. It is not
// called for an alert still queued or in flight when Run stops.
//
// A subscriber whose queue is full gets a dead letter (ReasonQueueFull)
// instead of blocking the caller. Enqueue waits for Run to start.
func (d *Deliverer) Enqueue(ctx context.Context, a codecs.Alert, settled func()) error {
	select {
	case <-d.started:
	case <-ctx.Done():
		return fmt.Errorf("webhooks: enqueue %s: %w", a.AlertID, ctx.Err())
	}
	if err := d.refresh(ctx, false); err != nil {
		return fmt.Errorf("webhooks: enqueue %s: %w", a.AlertID, err)
	}
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("webhooks: enqueue %s: %w", a.AlertID, err)
	}
	full, err := d.offer(a, body, settled)
	if err != nil {
		return err
	}
	for _, j := range full {
		d.log.Warn("webhooks: queue full, alert dead-lettered", "subscription", j.subID, "alert_id", a.AlertID)
		dl := DeadLetter{AlertID: a.AlertID, Reason: ReasonQueueFull, At: time.Now().UTC()}
		if err := d.store.recordDeadLetter(ctx, j.subID, dl); err != nil {
			d.log.Error("webhooks: dead letter not recorded", "subscription", j.subID, "alert_id", a.AlertID, "err", err)
		}
		j.settle()
	}
	return nil
}

// offer puts a job on the queue of every matching subscription and returns
// the jobs whose queue was full.
func (d *Deliverer) offer(a codecs.Alert, body []byte, settled func()) ([]job, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil, ErrStopped
	}
	var matched []*record
	for i := range d.subs {
		if d.subs[i].Matches(a) {
			matched = append(matched, &d.subs[i])
		}
	}
	settle := countdown(len(matched), settled)
	var full []job
	for _, rec := range matched {
		j := job{subID: rec.ID, alertID: a.AlertID, studyID: a.StudyID, body: body, settle: settle}
		if !d.workerLocked(rec).offer(j) {
			full = append(full, j)
		}
	}
	return full, nil
}

// countdown returns a func that calls fn on its n-th call; with n == 0 it
// calls fn now.
func countdown(n int, fn func()) func() {
	if fn == nil {
		return func() {}
	}
	if n == 0 {
		fn()
		return func() {}
	}
	var left atomic.Int64
	left.Store(int64(n))
	return func() {
		if left.Add(-1) == 0 {
			fn()
		}
	}
}

// refresh reloads the subscriptions when forced or older than Refresh. When
// Redis fails, the last snapshot stays in use until the next Refresh.
func (d *Deliverer) refresh(ctx context.Context, force bool) error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	d.mu.Lock()
	loaded, age := !d.loadedAt.IsZero(), time.Since(d.loadedAt)
	d.mu.Unlock()
	if loaded && !force && age < d.cfg.Refresh {
		return nil
	}
	recs, err := d.store.loadAll(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if loaded {
			d.loadedAt = time.Now() // retry at the next Refresh, not on every alert
			d.log.Warn("webhooks: reload subscriptions; delivering to the ones known", "err", err)
			return nil
		}
		return err
	}
	d.install(recs)
	return nil
}

// install makes recs the snapshot: workers see updated subscriptions, and
// those of deleted ones stop. Called with d.mu held.
func (d *Deliverer) install(recs []record) {
	d.subs, d.loadedAt = recs, time.Now()
	byID := make(map[string]*record, len(recs))
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	for id, w := range d.workers {
		if rec, ok := byID[id]; ok {
			w.rec.Store(rec)
			continue
		}
		w.retire()
		delete(d.workers, id)
	}
}

// workerLocked returns the worker of rec, starting it if needed. Called
// with d.mu held, after Run started and before it stopped.
func (d *Deliverer) workerLocked(rec *record) *worker {
	if w, ok := d.workers[rec.ID]; ok {
		return w
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	w := &worker{d: d, id: rec.ID, queue: make(chan job, d.cfg.QueueSize), ctx: ctx, cancel: cancel}
	w.rec.Store(rec)
	d.workers[rec.ID] = w
	d.wg.Go(w.run)
	return w
}
