package views

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/rules"
)

// SubjectView is the answer of GET /v1/subjects/{id}.
type SubjectView struct {
	SubjectID    string                   `json:"subject_id"`
	StudyID      string                   `json:"study_id"`
	SiteID       string                   `json:"site_id"`
	Reports      int                      `json:"reports"`
	FirstReport  *time.Time               `json:"first_report_at,omitempty"`
	LastReport   *time.Time               `json:"last_report_at,omitempty"`
	Recent       map[string][]PointView   `json:"recent"`
	OpenAlerts   []OpenAlertView          `json:"open_alerts"`
	Acknowledged []string                 `json:"acknowledged_alerts"`
	Plan         json.RawMessage          `json:"plan,omitempty"`
	PlanFence    int64                    `json:"plan_fence,omitempty"`
	Baselines    map[string]*BaselineView `json:"baselines,omitempty"`
	// Thresholds are, per item, the fixed levels the study's rule set
	// alerts at (for the charts); with ?with=thresholds.
	Thresholds map[string][]rules.Line `json:"thresholds,omitempty"`
	// Alerts are the subject's alerts among the latest the stream holds,
	// newest first, with their acknowledgements (OpenAlerts are only the
	// conditions that still hold); with ?with=alerts.
	Alerts []SubjectAlert `json:"alerts,omitempty"`
}

// PointView is one recent value of an item.
type PointView struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// BaselineView is an item's baseline: the mean of its first reports.
type BaselineView struct {
	Mean    float64 `json:"mean"`
	Reports int     `json:"reports"`
}

// OpenAlertView is an alert condition that holds now.
type OpenAlertView struct {
	Condition    string    `json:"condition"`
	AlertID      string    `json:"alert_id"`
	Severity     string    `json:"severity"`
	Since        time.Time `json:"since"`
	Acknowledged bool      `json:"acknowledged"`
}

func unix(s int64) *time.Time {
	if s == 0 {
		return nil
	}
	t := time.Unix(s, 0).UTC()
	return &t
}

// NewSubjectView shapes a subject's state for the API.
func NewSubjectView(st codecs.SubjectState) SubjectView {
	v := SubjectView{SubjectID: st.SubjectID, StudyID: st.StudyID, SiteID: st.SiteID, Reports: st.Reports,
		FirstReport: unix(st.FirstAt), LastReport: unix(st.LastAt), Recent: map[string][]PointView{},
		OpenAlerts: []OpenAlertView{}, Acknowledged: slices.Clone(st.Acked), Plan: json.RawMessage(st.Plan), PlanFence: st.Fence}
	if v.Acknowledged == nil {
		v.Acknowledged = []string{}
	}
	for code, h := range st.Items {
		for _, p := range h.Recent {
			v.Recent[code] = append(v.Recent[code], PointView{At: time.Unix(p.T, 0).UTC(), Value: p.V})
		}
		if h.BaseN > 0 {
			if v.Baselines == nil {
				v.Baselines = map[string]*BaselineView{}
			}
			v.Baselines[code] = &BaselineView{Mean: h.BaseSum / float64(h.BaseN), Reports: h.BaseN}
		}
	}
	for cond, o := range st.Open {
		v.OpenAlerts = append(v.OpenAlerts, OpenAlertView{Condition: cond, AlertID: o.AlertID, Severity: o.Severity,
			Since: time.Unix(o.Since, 0).UTC(), Acknowledged: slices.Contains(st.Acked, o.AlertID)})
	}
	slices.SortFunc(v.OpenAlerts, func(a, b OpenAlertView) int { return b.Since.Compare(a.Since) })
	return v
}

type problem struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// getSubject is GET /v1/subjects/{id}; ?with=thresholds,alerts adds the
// rule set's levels and the subject's alerts (the dashboard asks for both;
// without them the answer is the state alone). Headers say how fresh the answer
// is: X-View-Lag-Records (table records this view has not applied yet,
// measured every second) and X-View-Recovered (false while the view is
// still loading the table: a 404 then may be a subject not loaded yet).
func (s *Server) getSubject(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-View-Lag-Records", strconv.FormatInt(s.lag.lag.Load(), 10))
	w.Header().Set("X-View-Recovered", strconv.FormatBool(s.subjects.Recovered()))
	w.Header().Set("Cache-Control", "no-store")
	var thresholds, alerts bool
	for _, with := range r.URL.Query()["with"] {
		for _, part := range strings.Split(with, ",") {
			switch part {
			case "thresholds":
				thresholds = true
			case "alerts":
				alerts = true
			default:
				writeJSON(w, http.StatusBadRequest, problem{Error: "with must list thresholds and/or alerts, comma-separated"})
				return
			}
		}
	}
	st, ok, err := s.subjects.Get(r.PathValue("id"))
	switch {
	case errors.Is(err, ErrBadID):
		writeJSON(w, http.StatusBadRequest, problem{Error: "malformed subject id: letters, digits and . _ : - only, at most 128"})
	case err != nil:
		s.log.Error("subject view read failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the subject view cannot be read right now"})
	case !ok || !httpauth.KeyOf(r).MayActFor(st.StudyID): // another study's subject is not shown to exist
		writeJSON(w, http.StatusNotFound, problem{Error: "no subject with this id has reported"})
	default:
		v := NewSubjectView(st)
		if thresholds {
			v.Thresholds = map[string][]rules.Line{}
			set := s.rules.For(st.StudyID)
			for code, h := range st.Items {
				if lines := set.Lines(code, h); len(lines) > 0 {
					v.Thresholds[code] = lines
				}
			}
		}
		if alerts {
			if v.Alerts = s.hub.SubjectAlerts(st.SubjectID); v.Alerts == nil {
				v.Alerts = []SubjectAlert{}
			}
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// Me is the answer of GET /v1/me: what the caller's key may do here.
type Me struct {
	KeyID   string   `json:"key_id"`
	Name    string   `json:"name"`
	Studies []string `json:"studies"`
	Roles   []string `json:"roles"`
	// MayAcknowledge: the key has the operate role and this server forwards
	// acknowledgements to the ingest API. Which studies it may acknowledge
	// for is decided there.
	MayAcknowledge bool `json:"may_acknowledge"`
}

// getMe is GET /v1/me, for a key of any role: the page shows the
// acknowledge control only to a key that may use it.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Me{KeyID: k.ID, Name: k.Name, Studies: k.Studies, Roles: k.Roles,
		MayAcknowledge: s.ack != nil && k.Has(apikeys.RoleOperate)})
}
