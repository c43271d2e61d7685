package codecs

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Severities of an alert, in increasing order.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityUrgent  = "urgent"
)

// SeverityRank orders severities: info < warning < urgent; unknown is 0.
func SeverityRank(s string) int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityUrgent:
		return 3
	}
	return 0
}

// Alert is what the subject group writes to epro-alerts.
type Alert struct {
	V           int       `json:"v"`
	AlertID     string    `json:"alert_id"`
	RuleID      string    `json:"rule_id"`
	RuleVersion int       `json:"rule_version"`
	Severity    string    `json:"severity"`
	StudyID     string    `json:"study_id"`
	SiteID      string    `json:"site_id"`
	SubjectID   string    `json:"subject_id"`
	MessageID   string    `json:"message_id"`
	SubmittedAt time.Time `json:"submitted_at"`
	RaisedAt    time.Time `json:"raised_at"`
	Evidence    Evidence  `json:"evidence"`
}

// Evidence is why an alert was raised: numbers and thresholds, never free text.
type Evidence struct {
	Item      string    `json:"item,omitempty"`
	Values    []float64 `json:"values,omitempty"`
	Unit      string    `json:"unit,omitempty"`
	Baseline  *float64  `json:"baseline,omitempty"`
	Threshold float64   `json:"threshold"`
	Detail    string    `json:"detail,omitempty"`
}

func (a Alert) wireVersion() int { return a.V }

// AlertOwner is the record of epro-alert-index (key alert_id, compacted):
// whose alert an id is. The subject group writes one with every alert it
// emits; the gateway reads the index to check that an acknowledgement names
// the alert's own subject and study. It carries no evidence.
type AlertOwner struct {
	V         int       `json:"v"`
	AlertID   string    `json:"alert_id"`
	StudyID   string    `json:"study_id"`
	SiteID    string    `json:"site_id"`
	SubjectID string    `json:"subject_id"`
	RaisedAt  time.Time `json:"raised_at"`
}

func (o AlertOwner) wireVersion() int { return o.V }

// Owner returns a's index record.
func (a Alert) Owner() AlertOwner {
	return AlertOwner{V: WireVersion, AlertID: a.AlertID, StudyID: a.StudyID, SiteID: a.SiteID, SubjectID: a.SubjectID, RaisedAt: a.RaisedAt}
}

// AlertID derives an alert's id from its evidence: the same rule, version,
// subject, triggering record and severity always give the same id, so a
// replayed alert is recognisable downstream.
func AlertID(ruleID string, ruleVersion int, subjectID, trigger, item, severity string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{
		ruleID, strconv.Itoa(ruleVersion), subjectID, trigger, item, severity,
	}, "\x1f")))
	return hex.EncodeToString(h[:16])
}
