package views_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/views"
	"github.com/eprostream/eprostream/webhooks"
)

func (r *readSide) do(method, path, token, body string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A read key subscribes an endpoint to alerts of its own studies only, and
// sees, reads and deletes only the subscriptions it made.
func TestWebhookSubscriptionsAreScopedToTheirKey(t *testing.T) {
	r := newReadSide(t)
	store := webhooks.NewStore(r.rdb, r.prefix)
	r.hooks = &views.Webhooks{Store: store}
	r.start()
	onc, other := r.key("ONC-301", apikeys.RoleRead), r.key("ONC-301", apikeys.RoleRead)
	body := func(studies string) string {
		return `{"name":"site 12 nurses","url":"https://hooks.example.org/epro","studies":` + studies + `,"min_severity":"warning"}`
	}
	for _, c := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"another study", body(`["CAR-200"]`), 403, `may not read study "CAR-200"`},
		{"every study", body(`["*"]`), 403, `may not read study "*"`},
		{"one of them another study's", body(`["ONC-301","CAR-200"]`), 403, `"CAR-200"`},
		{"no study", body(`[]`), 400, "studies: at least one"},
		{"a bad url", `{"name":"x","url":"ftp://x","studies":["ONC-301"]}`, 400, "url:"},
		{"an unknown field", `{"name":"x","url":"https://x.org","studies":["ONC-301"],"owner":"someone"}`, 400, "owner"},
	} {
		status, b := r.do(http.MethodPost, "/v1/webhooks", onc, c.body)
		var p struct{ Error string }
		_ = json.Unmarshal(b, &p)
		if status != c.status || !strings.Contains(p.Error, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, b, c.status, c.msg)
		}
	}
	status, b := r.do(http.MethodPost, "/v1/webhooks", onc, body(`["ONC-301"]`))
	var created views.WebhookCreated
	if err := json.Unmarshal(b, &created); status != http.StatusCreated || err != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create: %d %s", status, b)
	}
	stored, err := store.Get(t.Context(), created.Subscription.ID)
	if err != nil || stored.Owner == "" || stored.Owner != created.Subscription.Owner {
		t.Fatalf("stored subscription %+v (%v): want the creating key as owner", stored, err)
	}
	list := func(token string) int {
		status, b := r.do(http.MethodGet, "/v1/webhooks", token, "")
		var got struct{ Subscriptions []webhooks.Subscription }
		if err := json.Unmarshal(b, &got); status != 200 || err != nil {
			t.Fatalf("list: %d %s", status, b)
		}
		return len(got.Subscriptions)
	}
	if n, m := list(onc), list(other); n != 1 || m != 0 {
		t.Fatalf("lists: owner sees %d, another key of the study %d; want 1 and 0", n, m)
	}
	path := "/v1/webhooks/" + created.Subscription.ID
	if status, b := r.do(http.MethodGet, path, other, ""); status != 404 {
		t.Errorf("another key reads it: %d %s", status, b)
	}
	if status, b := r.do(http.MethodDelete, path, other, ""); status != 404 {
		t.Errorf("another key deletes it: %d %s", status, b)
	}
	if _, err := store.Get(t.Context(), created.Subscription.ID); err != nil {
		t.Fatalf("the subscription is gone after another key's delete: %v", err)
	}
	if status, b := r.do(http.MethodGet, path, onc, ""); status != 200 || strings.Contains(string(b), "whsec_") {
		t.Errorf("the owner reads it: %d %s (the secret is shown only at creation)", status, b)
	}
	if status, b := r.do(http.MethodDelete, path, onc, ""); status != http.StatusNoContent {
		t.Fatalf("the owner deletes it: %d %s", status, b)
	}
	if status, _ := r.do(http.MethodGet, path, onc, ""); status != 404 {
		t.Errorf("after the delete: %d, want 404", status)
	}
}

// auditLog is an audit.Sender that keeps what it is sent, or fails.
type auditLog struct {
	mu     sync.Mutex
	events []codecs.AuditEvent
	fail   atomic.Bool
}

func (l *auditLog) Emit(_ context.Context, e codecs.AuditEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail.Load() {
		return errors.New("kafka: no broker answers")
	}
	l.events = append(l.events, e)
	return nil
}

// Creating and deleting a subscription through the API records each in
// the audit trail with the key as actor; without its audit event nothing
// is created or deleted.
func TestWebhookActionsAreAudited(t *testing.T) {
	r := newReadSide(t)
	store := webhooks.NewStore(r.rdb, r.prefix)
	trail := &auditLog{}
	r.hooks = &views.Webhooks{Store: store, Audit: trail}
	r.start()
	token := r.key("ONC-301", apikeys.RoleRead)
	body := `{"name":"nurses","url":"https://hooks.example.org/epro","studies":["ONC-301"]}`

	trail.fail.Store(true)
	if status, b := r.do(http.MethodPost, "/v1/webhooks", token, body); status != http.StatusServiceUnavailable || !strings.Contains(string(b), "audit trail") {
		t.Fatalf("create without the audit trail: %d %s, want 503 naming it", status, b)
	}
	if subs, err := store.List(t.Context()); err != nil || len(subs) != 0 {
		t.Fatalf("a subscription was kept without its audit event: %d (%v)", len(subs), err)
	}
	trail.fail.Store(false)
	status, b := r.do(http.MethodPost, "/v1/webhooks", token, body)
	var created views.WebhookCreated
	if err := json.Unmarshal(b, &created); status != http.StatusCreated || err != nil {
		t.Fatalf("create: %d %s", status, b)
	}
	path := "/v1/webhooks/" + created.Subscription.ID
	trail.fail.Store(true)
	if status, _ := r.do(http.MethodDelete, path, token, ""); status != http.StatusServiceUnavailable {
		t.Fatalf("delete without the audit trail: %d, want 503", status)
	}
	if _, err := store.Get(t.Context(), created.Subscription.ID); err != nil {
		t.Fatalf("deleted without its audit event: %v", err)
	}
	trail.fail.Store(false)
	if status, _ := r.do(http.MethodDelete, path, token, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if len(trail.events) != 2 {
		t.Fatalf("%d audit events, want the creation and the deletion: %+v", len(trail.events), trail.events)
	}
	owner := "key:" + created.Subscription.Owner
	for i, want := range []string{codecs.AuditWebhookCreate, codecs.AuditWebhookDelete} {
		e := trail.events[i]
		if e.Action != want || e.Actor != owner || e.Target != created.Subscription.ID || e.StudyID != "ONC-301" || e.Validate() != nil {
			t.Errorf("event %d: %+v, want %s of %s by %s", i, e, want, created.Subscription.ID, owner)
		}
	}
	if strings.Contains(string(trail.events[0].After), created.Secret) {
		t.Error("the audit event holds the subscription's secret")
	}
}
