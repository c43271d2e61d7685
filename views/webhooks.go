package views

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/webhooks"
)

// Webhooks is the subscription API of the read side: a read key subscribes
// an endpoint to alerts of its own studies and manages what it created.
// Subscriptions made by operators (`eprostream webhook create`) have no
// owner and are not visible here.
type Webhooks struct {
	Store *webhooks.Store
	// Audit records each subscription created or deleted (epro-audit);
	// nil records nothing (tests of the handlers alone).
	Audit audit.Sender
	Log   *slog.Logger // nil discards
}

// record writes e to the audit trail, if there is one.
func (h Webhooks) record(ctx context.Context, e codecs.AuditEvent) error {
	if h.Audit == nil {
		return nil
	}
	return h.Audit.Emit(ctx, e)
}

// WebhookRequest is the body of POST /v1/webhooks.
type WebhookRequest struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	Studies     []string `json:"studies"`
	Sites       []string `json:"sites,omitempty"`
	MinSeverity string   `json:"min_severity,omitempty"`
}

// WebhookCreated is the answer to POST /v1/webhooks: the signing secret is
// shown only here.
type WebhookCreated struct {
	Subscription webhooks.Subscription `json:"subscription"`
	Secret       string                `json:"secret"`
}

// Register adds the routes.
func (h Webhooks) Register(route Route) {
	route("POST /v1/webhooks", h.create)
	route("GET /v1/webhooks", h.list)
	route("GET /v1/webhooks/{id}", h.get)
	route("DELETE /v1/webhooks/{id}", h.remove)
}

const maxWebhookBody = 64 << 10

func (h Webhooks) create(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	var req WebhookRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "the body is not a webhook subscription (name, url, studies, sites, min_severity): "+err.Error())
		return
	}
	if len(req.Studies) == 0 {
		fail(w, http.StatusBadRequest, "studies: at least one study this key may read")
		return
	}
	for _, s := range req.Studies {
		if !k.MayActFor(s) {
			fail(w, http.StatusForbidden, "this API key may not read study "+codecs.QuoteID(s))
			return
		}
	}
	sub, secret, err := h.Store.Create(r.Context(), webhooks.Spec{Name: req.Name, URL: req.URL, Studies: req.Studies,
		Sites: req.Sites, MinSeverity: req.MinSeverity, Owner: k.ID})
	switch {
	case errors.Is(err, webhooks.ErrInvalid):
		fail(w, http.StatusBadRequest, err.Error())
	case err != nil:
		logging.OrDiscard(h.Log).Warn("webhook subscription not stored", "err", err)
		fail(w, http.StatusServiceUnavailable, "the subscription could not be stored right now; retry")
	default:
		if err := h.record(r.Context(), audit.WebhookCreated(sub, audit.Key(k.ID))); err != nil {
			// No subscription without its audit event: take it back.
			logging.OrDiscard(h.Log).Warn("webhook subscription not audited; removed again", "subscription", sub.ID, "err", err)
			_ = h.Store.Delete(context.WithoutCancel(r.Context()), sub.ID)
			fail(w, http.StatusServiceUnavailable, "the subscription could not be recorded in the audit trail right now; nothing was created; retry")
			return
		}
		logging.OrDiscard(h.Log).Info("webhook subscription created", "subscription", sub.ID, "by", k.ID)
		writeJSON(w, http.StatusCreated, WebhookCreated{Subscription: sub, Secret: secret})
	}
}

func (h Webhooks) list(w http.ResponseWriter, r *http.Request) {
	all, err := h.Store.List(r.Context())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "the subscriptions cannot be read right now; retry")
		return
	}
	k := httpauth.KeyOf(r)
	own := slices.DeleteFunc(all, func(s webhooks.Subscription) bool { return s.Owner != k.ID })
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": append([]webhooks.Subscription{}, own...)})
}

// owned returns the caller's subscription with the path's id; false after
// answering (404 for one that is not the caller's, whether or not it exists).
func (h Webhooks) owned(w http.ResponseWriter, r *http.Request) (webhooks.Subscription, bool) {
	id := r.PathValue("id")
	sub, err := h.Store.Get(r.Context(), id)
	switch {
	case errors.Is(err, webhooks.ErrNotFound) || err == nil && sub.Owner != httpauth.KeyOf(r).ID:
		fail(w, http.StatusNotFound, "no webhook subscription "+codecs.QuoteID(id)+" of this API key")
		return webhooks.Subscription{}, false
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "the subscription cannot be read right now; retry")
		return webhooks.Subscription{}, false
	}
	return sub, true
}

func (h Webhooks) get(w http.ResponseWriter, r *http.Request) {
	if sub, ok := h.owned(w, r); ok {
		writeJSON(w, http.StatusOK, sub)
	}
}

func (h Webhooks) remove(w http.ResponseWriter, r *http.Request) {
	sub, ok := h.owned(w, r)
	if !ok {
		return
	}
	// The event first: a delete that fails after it is retried with the
	// same event id, which the warehouse stores once.
	if err := h.record(r.Context(), audit.WebhookDeleted(sub, audit.Key(httpauth.KeyOf(r).ID), time.Now())); err != nil {
		fail(w, http.StatusServiceUnavailable, "the deletion could not be recorded in the audit trail right now; nothing was deleted; retry")
		return
	}
	if err := h.Store.Delete(r.Context(), sub.ID); err != nil && !errors.Is(err, webhooks.ErrNotFound) {
		fail(w, http.StatusServiceUnavailable, "the subscription could not be deleted right now; retry")
		return
	}
	logging.OrDiscard(h.Log).Info("webhook subscription deleted", "subscription", sub.ID, "by", httpauth.KeyOf(r).ID)
	w.WriteHeader(http.StatusNoContent)
}
