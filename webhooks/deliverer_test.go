package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/webhooks"
)

func status(t *testing.T, store *webhooks.Store, id string) webhooks.Status {
	t.Helper()
	st, err := store.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wantReceived(t *testing.T, rc *receiver, want ...string) {
	t.Helper()
	if got := rc.received(); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestDeliverySignedAndFiltered(t *testing.T) {
	store := newStore(t)
	site12, urgentOnly, paused := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	subSite := subscribe(t, store, site12, webhooks.Spec{Studies: []string{"ONC-301"}, Sites: []string{"SITE-012"},
		MinSeverity: codecs.SeverityWarning})
	subUrgent := subscribe(t, store, urgentOnly, webhooks.Spec{MinSeverity: codecs.SeverityUrgent})
	subPaused := subscribe(t, store, paused, webhooks.Spec{Studies: []string{"CAR-200"}})
	if _, err := store.SetPaused(context.Background(), subPaused.ID, true); err != nil {
		t.Fatal(err)
	}
	d := run(t, store, webhooks.Config{})

	waitAll(t, "settled", enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityWarning),
		alert("a2", "ONC-301", "SITE-013", codecs.SeverityUrgent),
		alert("a3", "CAR-200", "SITE-001", codecs.SeverityUrgent),
		alert("a4", "ONC-301", "SITE-012", codecs.SeverityInfo), // matches nobody: settled at once
	)...)

	wantReceived(t, site12, "a1")
	wantReceived(t, urgentOnly, "a2", "a3")
	wantReceived(t, paused)
	if st := status(t, store, subSite.ID); st.Delivered != 1 || st.FailedAttempts != 0 || st.LastSuccessAt.IsZero() {
		t.Errorf("status %+v", st)
	}
	if st := status(t, store, subUrgent.ID); st.Delivered != 2 {
		t.Errorf("status %+v", st)
	}
	dead, err := store.DeadLetters(context.Background(), subPaused.ID, 10)
	if err != nil || len(dead) != 1 || dead[0].AlertID != "a3" || dead[0].Reason != webhooks.ReasonPaused {
		t.Errorf("paused subscription's dead letters: %+v %v", dead, err)
	}
	if st := status(t, store, subPaused.ID); st.DeadLettered != 1 || st.Delivered != 0 {
		t.Errorf("paused status %+v", st)
	}
}

func TestOrderPreservedUnderRetries(t *testing.T) {
	store := newStore(t)
	rc := newReceiver(t, func(_ *http.Request, id string, try int) int {
		if id == "a1" && try <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	sub := subscribe(t, store, rc, webhooks.Spec{})
	cfg := fastRetries
	cfg.Attempts = 5
	d := run(t, store, cfg)

	waitAll(t, "settled", enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a3", "ONC-301", "SITE-012", codecs.SeverityUrgent),
	)...)

	wantReceived(t, rc, "a1", "a2", "a3")
	if n := rc.triesOf("a1"); n != 3 {
		t.Errorf("a1 tried %d times, want 3", n)
	}
	st := status(t, store, sub.ID)
	if st.Delivered != 3 || st.FailedAttempts != 2 || st.DeadLettered != 0 || st.LastError != "HTTP 503" ||
		st.LastFailureAt.IsZero() || st.LastSuccessAt.Before(st.LastFailureAt) {
		t.Errorf("status %+v", st)
	}
}

func TestDeadLetterThenNextAlert(t *testing.T) {
	store := newStore(t)
	rc := newReceiver(t, func(_ *http.Request, id string, _ int) int {
		if id == "a1" {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	sub := subscribe(t, store, rc, webhooks.Spec{Studies: []string{"ONC-301"}})
	gone := newReceiver(t, nil)
	subGone := subscribe(t, store, gone, webhooks.Spec{Studies: []string{"CAR-200"}})
	gone.srv.Close() // connection refused from now on
	d := run(t, store, fastRetries)

	waitAll(t, "settled", enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("c1", "CAR-200", "SITE-001", codecs.SeverityWarning),
	)...)

	wantReceived(t, rc, "a2")
	if n := rc.triesOf("a1"); n != fastRetries.Attempts {
		t.Errorf("a1 tried %d times, want %d", n, fastRetries.Attempts)
	}
	dead, err := store.DeadLetters(context.Background(), sub.ID, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	if dl := dead[0]; dl.AlertID != "a1" || dl.Reason != webhooks.ReasonAttempts || dl.LastStatus != 500 ||
		dl.LastError != "HTTP 500" || dl.Attempts != 3 || dl.At.IsZero() {
		t.Errorf("dead letter %+v", dl)
	}
	if st := status(t, store, sub.ID); st.Delivered != 1 || st.FailedAttempts != 3 || st.DeadLettered != 1 {
		t.Errorf("status %+v", st)
	}
	dead, err = store.DeadLetters(context.Background(), subGone.ID, 10)
	if err != nil || len(dead) != 1 || dead[0].LastStatus != 0 || dead[0].LastError == "" {
		t.Errorf("unreachable subscriber's dead letters %+v %v", dead, err)
	}
}

func TestSlowSubscriberDoesNotDelayFastOne(t *testing.T) {
	store := newStore(t)
	slow := newReceiver(t, nil)
	slow.respond = func(req *http.Request, _ string, _ int) int { return slow.blockUntilReleased(req) }
	fast := newReceiver(t, nil)
	subscribe(t, store, slow, webhooks.Spec{})
	subscribe(t, store, fast, webhooks.Spec{})
	d := run(t, store, webhooks.Config{RequestTimeout: time.Minute})

	settled := enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a3", "ONC-301", "SITE-012", codecs.SeverityUrgent),
	)
	waitFor(t, fast.accepted, "a3")
	waitFor(t, slow.entered, "a1")
	// The fast subscriber has every alert while the slow one still holds the first.
	wantReceived(t, fast, "a1", "a2", "a3")
	wantReceived(t, slow)
	if slow.triesOf("a2") != 0 {
		t.Error("a2 went to the slow subscriber before a1 was answered")
	}
	slow.unblock()
	waitAll(t, "settled", settled...)
	wantReceived(t, slow, "a1", "a2", "a3")
}

func TestQueueFullDeadLetters(t *testing.T) {
	store := newStore(t)
	rc := newReceiver(t, nil)
	rc.respond = func(req *http.Request, _ string, _ int) int { return rc.blockUntilReleased(req) }
	sub := subscribe(t, store, rc, webhooks.Spec{})
	d := run(t, store, webhooks.Config{QueueSize: 1, RequestTimeout: time.Minute})

	first := enqueue(t, d, alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent))
	waitFor(t, rc.entered, "a1") // a1 is out of the queue, in flight
	rest := enqueue(t, d,
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent), // queued
		alert("a3", "ONC-301", "SITE-012", codecs.SeverityUrgent), // queue full
	)
	waitAll(t, "a3 settled as dead letter", rest[1])
	dead, err := store.DeadLetters(context.Background(), sub.ID, 10)
	if err != nil || len(dead) != 1 || dead[0].AlertID != "a3" || dead[0].Reason != webhooks.ReasonQueueFull {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	rc.unblock()
	waitAll(t, "settled", first[0], rest[0])
	wantReceived(t, rc, "a1", "a2")
}

func TestDeletedSubscriptionSettlesItsAlerts(t *testing.T) {
	store := newStore(t)
	rc := newReceiver(t, nil)
	rc.respond = func(req *http.Request, _ string, _ int) int { return rc.blockUntilReleased(req) }
	sub := subscribe(t, store, rc, webhooks.Spec{})
	d := run(t, store, webhooks.Config{Refresh: 20 * time.Millisecond, RequestTimeout: time.Minute})

	settled := enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent),
	)
	waitFor(t, rc.entered, "a1")
	if err := store.Delete(context.Background(), sub.ID); err != nil {
		t.Fatal(err)
	}
	// Within a refresh, the in-flight and the queued alert are settled:
	// an alert consumer is never left waiting on a subscriber that is gone.
	waitAll(t, "settled after delete", settled...)
	wantReceived(t, rc)
}

func TestRunStopsCleanly(t *testing.T) {
	store := newStore(t)
	rc := newReceiver(t, nil)
	rc.respond = func(req *http.Request, _ string, _ int) int { return rc.blockUntilReleased(req) }
	subscribe(t, store, rc, webhooks.Spec{})
	d := run(t, store, webhooks.Config{RequestTimeout: time.Minute})

	settled := enqueue(t, d, alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent))
	waitFor(t, rc.entered, "a1")
	if err := d.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-settled[0]:
		t.Error("an alert cut off in flight was settled: it would not be delivered again after a restart")
	default:
	}
	err := d.Enqueue(context.Background(), alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent), nil)
	if !errors.Is(err, webhooks.ErrStopped) {
		t.Errorf("enqueue after stop: %v", err)
	}
}

func TestKeysHaveTTLs(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := webhooks.NewStore(rdb, prefix)
	rc := newReceiver(t, func(_ *http.Request, id string, _ int) int {
		if id == "a1" {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	subscribe(t, store, rc, webhooks.Spec{})
	cfg := fastRetries
	cfg.Attempts = 1
	d := run(t, store, cfg)
	waitAll(t, "settled", enqueue(t, d,
		alert("a1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("a2", "ONC-301", "SITE-012", codecs.SeverityUrgent),
	)...)

	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 4 { // index, subscription, status, dead letters
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(ctx, k).Val(); ttl < 6*24*time.Hour {
			t.Errorf("%s: TTL %v", k, ttl)
		}
	}
}
