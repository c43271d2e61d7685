package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// job is one alert for one subscriber.
type job struct {
	subID   string
	alertID string
	studyID string
	body    []byte // the alert's JSON, shared by every subscriber's job
	settle  func()
}

// worker delivers one subscription's alerts, one at a time, in order.
type worker struct {
	d       *Deliverer
	id      string
	rec     atomic.Pointer[record] // latest version of the subscription
	queue   chan job
	ctx     context.Context // ends when Run stops or the subscription is gone
	cancel  context.CancelFunc
	retired atomic.Bool
}

func (w *worker) offer(j job) bool {
	select {
	case w.queue <- j:
		return true
	default:
		return false
	}
}

// retire stops the worker of a deleted subscription; what it still holds
// is settled, since nobody is left to deliver it to.
func (w *worker) retire() {
	w.retired.Store(true)
	w.cancel()
}

func (w *worker) run() {
	defer w.cancel()
	for {
		select {
		case <-w.ctx.Done():
			if w.retired.Load() {
				w.drain()
			}
			return
		case j := <-w.queue:
			w.handle(j)
		}
	}
}

// drain settles the queued jobs of a retired worker. No job is added after
// retire: offers and retire both hold d.mu, and retire removes the worker.
func (w *worker) drain() {
	for {
		select {
		case j := <-w.queue:
			j.settle()
		default:
			return
		}
	}
}

func (w *worker) handle(j job) {
	rec := w.rec.Load()
	if rec.Paused {
		w.deadLetter(j, DeadLetter{Reason: ReasonPaused})
		return
	}
	if problem := w.ownerProblem(rec, j); problem != "" {
		w.d.log.Warn("webhooks: owner key not valid, alert dead-lettered", "subscription", w.id, "alert_id", j.alertID, "problem", problem)
		w.deadLetter(j, DeadLetter{Reason: ReasonOwner, LastError: problem})
		return
	}
	attempts, last, err := w.send(rec, j)
	switch {
	case err == nil:
		if err := w.d.store.recordDelivered(w.ctx, w.id, time.Now()); err != nil {
			w.d.log.Warn("webhooks: delivered, status not recorded", "subscription", w.id, "alert_id", j.alertID, "err", err)
		}
		j.settle()
	case w.ctx.Err() != nil:
		if w.retired.Load() {
			j.settle()
		} // else stopping: left unsettled, so it is delivered again after the restart
	default:
		w.d.log.Warn("webhooks: alert dead-lettered", "subscription", w.id, "alert_id", j.alertID,
			"attempts", attempts, "status", last, "err", err)
		w.deadLetter(j, DeadLetter{Reason: ReasonAttempts, LastStatus: last, LastError: errText(err), Attempts: attempts})
	}
}

// ownerProblem says why rec's owner may not receive j's alert; "" when it
// may (or rec has no owner: an operator's subscription).
func (w *worker) ownerProblem(rec *record, j job) string {
	if rec.Owner == "" {
		return ""
	}
	if w.d.owners == nil {
		return "owner keys cannot be checked here"
	}
	k, err := w.d.owners.Current(w.ctx, rec.Owner)
	switch {
	case err != nil:
		return "key " + rec.Owner + ": " + err.Error()
	case !k.Has(apikeys.RoleRead):
		return "key " + rec.Owner + " no longer has the read role"
	case !k.MayActFor(j.studyID):
		return "key " + rec.Owner + " is not scoped to the alert's study"
	}
	return ""
}

func (w *worker) deadLetter(j job, dl DeadLetter) {
	dl.AlertID, dl.At = j.alertID, time.Now().UTC()
	if err := w.d.store.recordDeadLetter(w.ctx, w.id, dl); err != nil {
		w.d.log.Error("webhooks: dead letter not recorded", "subscription", w.id, "alert_id", j.alertID,
			"reason", dl.Reason, "err", err)
	}
	j.settle()
}

// send tries j up to Attempts times with backoff; it returns the attempts
// made, the last HTTP status (0: no answer) and the last error.
func (w *worker) send(rec *record, j job) (attempts, status int, err error) {
	err = w.d.retry.RunCtx(w.ctx, func(ctx context.Context) error {
		attempts++
		var aerr error
		status, aerr = w.attempt(ctx, rec, j)
		if aerr != nil && ctx.Err() == nil {
			w.d.log.Debug("webhooks: attempt failed", "subscription", w.id, "alert_id", j.alertID,
				"attempt", attempts, "status", status, "err", aerr)
			if rerr := w.d.store.recordFailure(ctx, w.id, time.Now(), errText(aerr)); rerr != nil {
				w.d.log.Warn("webhooks: failure not recorded", "subscription", w.id, "err", rerr)
			}
		}
		return aerr
	})
	return attempts, status, err
}

// attempt POSTs j once, signed with a timestamp of its own, so a retry
// long after the first try still verifies within the receiver's tolerance.
func (w *worker) attempt(ctx context.Context, rec *record, j job) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.d.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.URL, bytes.NewReader(j.body))
	if err != nil {
		return 0, err
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "eprostream-webhooks/1")
	req.Header.Set(HeaderAlertID, j.alertID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(rec.Secret, ts, j.body))
	resp, err := w.d.http.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the answer so the connection can be reused; its
	// content is not kept (it is the receiver's, and may be anything).
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// errText is an error as stored in status and dead letters, bounded.
func errText(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the request timeout: " + truncate(err.Error(), 400)
	}
	return truncate(err.Error(), 500)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
