package views

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/eprostream/eprostream/internal/httpauth"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// streamAlerts is GET /v1/alerts/stream: Server-Sent Events, one "alert"
// event per alert with its JSON as data and "<partition>-<offset>" as id.
// Filters: ?study=, ?site=, ?severity= (the lowest severity wanted);
// ?recent=N starts with the latest N matching alerts (at most 1000). A
// reconnecting client sends Last-Event-ID (EventSource does so by itself)
// and gets every alert after it first.
func (s *Server) streamAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Study: q.Get("study"), Site: q.Get("site"), MinSeverity: q.Get("severity")}
	if k := httpauth.KeyOf(r); !k.MayActFor(apikeys.AllStudies) {
		if f.Study != "" && !k.MayActFor(f.Study) {
			writeJSON(w, http.StatusForbidden, problem{Error: "this API key may not read study " + f.Study})
			return
		}
		f.Studies = k.Studies
	}
	if msg := checkFilter(f); msg != "" {
		writeJSON(w, http.StatusBadRequest, problem{Error: msg})
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, problem{Error: "streaming is not supported by this connection"})
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id") // for clients that cannot set headers
	}
	recent, err := strconv.Atoi(q.Get("recent"))
	if q.Get("recent") != "" && (err != nil || recent < 0 || recent > 1000) {
		writeJSON(w, http.StatusBadRequest, problem{Error: "recent must be a number from 0 to 1000"})
		return
	}
	sub, backlog := s.hub.Subscribe(last, recent, f)
	defer s.hub.Unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	for _, ev := range backlog {
		writeEvent(w, ev)
	}
	flusher.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	// The key is checked again while the stream lasts, so a revoked or
	// expired key stops receiving within RecheckEvery plus the key cache's
	// lifetime (apikeys.Store.CacheFor).
	recheck := time.NewTicker(s.cfg.RecheckEvery)
	defer recheck.Stop()
	token := httpauth.TokenOf(r)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-recheck.C:
			if msg := s.stillAdmitted(r.Context(), token); msg != "" {
				fmt.Fprintf(w, "event: end\ndata: {\"error\":%q}\n\n", msg)
				flusher.Flush()
				return
			}
		case ev, ok := <-sub.C:
			if !ok {
				return // fell behind or shutting down: the client resumes with Last-Event-ID
			}
			writeEvent(w, ev)
			for more := len(sub.C); more > 0; more-- { // send what queued up in one flush
				if ev, ok = <-sub.C; ok {
					writeEvent(w, ev)
				}
			}
			flusher.Flush()
		case <-heartbeat.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, ev Event) {
	fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Name(), ev.Data)
}

func checkFilter(f Filter) string {
	for name, v := range map[string]string{"study": f.Study, "site": f.Site} {
		if v != "" && codecs.CheckID(v) != nil {
			return name + " is not a valid id"
		}
	}
	if f.MinSeverity != "" && codecs.SeverityRank(f.MinSeverity) == 0 {
		return "severity must be info, warning or urgent"
	}
	return ""
}

// stillAdmitted says why the stream's key may no longer read, or "". A key
// store that cannot be reached does not end a stream: the key was good, and
// the store's own staleness bound applies.
func (s *Server) stillAdmitted(ctx context.Context, token string) string {
	err := s.guard.Check(ctx, token, apikeys.RoleRead)
	var auth *apikeys.AuthError
	switch {
	case err == nil, errors.Is(err, apikeys.ErrUnavailable), ctx.Err() != nil:
		return ""
	case errors.As(err, &auth):
		return auth.Public()
	case errors.Is(err, httpauth.ErrRole):
		return "this API key lacks the read role"
	default:
		s.log.Warn("API key re-check failed; the stream goes on", "err", err)
		return ""
	}
}
