package views

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/httpauth"
)

// History is the answer of GET /v1/studies/{study}/subjects/{id}/history:
// every numeric value and score the subject reported in the last Days
// days, from the warehouse (the subject's state keeps only the few values
// its rules need).
type History struct {
	StudyID   string                 `json:"study_id"`
	SubjectID string                 `json:"subject_id"`
	Days      int                    `json:"days"`
	Items     map[string][]PointView `json:"items"` // oldest first, at most 1,000 per item
	// ReportDays are the UTC days with at least one report, oldest first.
	ReportDays []string `json:"report_days"`
}

const (
	defaultHistoryDays = 30
	maxHistoryDays     = 180
	maxHistoryPoints   = 1000
)

// The values and scores of one subject, newest kept when an item has more
// than the limit.
const historySQL = `SELECT code, at, value FROM (
    SELECT code, submitted_at AS at, value FROM %[1]s.submissions
    ARRAY JOIN item_codes AS code, item_values AS value
    WHERE study_id = ? AND subject_id = ? AND submitted_at >= ?
    UNION ALL
    SELECT code, submitted_at AS at, value FROM %[1]s.submissions
    ARRAY JOIN score_codes AS code, score_values AS value
    WHERE study_id = ? AND subject_id = ? AND submitted_at >= ?
) ORDER BY code, at DESC LIMIT %[2]d BY code`

// getHistory serves a subject's history to a key of the subject's study.
// A subject of another study, or one that never reported, is an empty
// history: nothing tells whether it exists.
func (s *Sites) getHistory(w http.ResponseWriter, r *http.Request) {
	study, subject := r.PathValue("study"), r.PathValue("id")
	if codecs.CheckID(study) != nil || codecs.CheckID(subject) != nil {
		writeJSON(w, http.StatusBadRequest, problem{Error: "study and subject must be ids: letters, digits and . _ : - only, at most 128"})
		return
	}
	if !httpauth.KeyOf(r).MayActFor(study) {
		writeJSON(w, http.StatusForbidden, problem{Error: "this API key may not read study " + study})
		return
	}
	days := defaultHistoryDays
	if q := r.URL.Query().Get("days"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxHistoryDays {
			writeJSON(w, http.StatusBadRequest, problem{Error: fmt.Sprintf("days must be a number from 1 to %d", maxHistoryDays)})
			return
		}
		days = n
	}
	h, err := s.History(r.Context(), study, subject, days)
	if err != nil {
		s.log.Warn("subject history unavailable", "study_id", study, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the subject's history cannot be read right now"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, h)
}

// History reads a subject's values of the last days from the warehouse.
func (s *Sites) History(ctx context.Context, study, subject string, days int) (History, error) {
	if days < 1 || days > maxHistoryDays {
		return History{}, errors.New("views: history days out of range")
	}
	h := History{StudyID: study, SubjectID: subject, Days: days, Items: map[string][]PointView{}, ReportDays: []string{}}
	from := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	rows, err := s.conn.Query(ctx, fmt.Sprintf(historySQL, "`"+s.db+"`", maxHistoryPoints), study, subject, from, study, subject, from)
	if err != nil {
		return h, fmt.Errorf("views: history: %w", err)
	}
	defer rows.Close()
	reported := map[string]bool{}
	for rows.Next() {
		var code string
		var p PointView
		if err := rows.Scan(&code, &p.At, &p.Value); err != nil {
			return h, fmt.Errorf("views: history: %w", err)
		}
		p.At = p.At.UTC()
		h.Items[code] = append(h.Items[code], p)
		reported[p.At.Format(time.DateOnly)] = true
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("views: history: %w", err)
	}
	for code, pts := range h.Items { // newest first from the query
		for i, j := 0, len(pts)-1; i < j; i, j = i+1, j-1 {
			pts[i], pts[j] = pts[j], pts[i]
		}
		h.Items[code] = pts
	}
	for d := from; !d.After(time.Now().UTC()); d = d.AddDate(0, 0, 1) {
		if day := d.Format(time.DateOnly); reported[day] {
			h.ReportDays = append(h.ReportDays, day)
		}
	}
	return h, nil
}
