package codecs

import (
	"fmt"
	"log/slog"
	"time"
)

// Enrolment statuses.
const (
	EnrolmentActive    = "active"
	EnrolmentWithdrawn = "withdrawn"
	EnrolmentCompleted = "completed"
)

// Enrolment is one subject's binding in the study registry: the value of
// epro-enrolments, keyed by subject_id. A subject belongs to one study; the
// binding changes only by an operator's enrolment, transfer or withdrawal
// (or, in a first-report study, by the subject's first accepted report),
// never as a side effect of a submission.
type Enrolment struct {
	V          int        `json:"v"`
	SubjectID  string     `json:"subject_id"`
	StudyID    string     `json:"study_id"`
	SiteID     string     `json:"site_id"`
	Status     string     `json:"status"`
	EnrolledAt time.Time  `json:"enrolled_at"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// Revision counts the changes of this subject's binding, from 1.
	Revision int `json:"revision"`
	// By is who made this revision: an API key id, "first-report", or
	// "cli:<user>".
	By string `json:"by"`
	// At is when this revision was made (server time).
	At time.Time `json:"at"`
	// Previous is the binding this revision replaced (absent on the
	// first): the audit trail's "before" of a transfer or withdrawal.
	Previous *EnrolmentBinding `json:"previous,omitempty"`
}

// EnrolmentBinding is what a revision said: study, site, status.
type EnrolmentBinding struct {
	StudyID  string `json:"study_id"`
	SiteID   string `json:"site_id"`
	Status   string `json:"status"`
	Revision int    `json:"revision"`
}

// Binding is e's study, site, status and revision.
func (e Enrolment) Binding() EnrolmentBinding {
	return EnrolmentBinding{StudyID: e.StudyID, SiteID: e.SiteID, Status: e.Status, Revision: e.Revision}
}

func (e Enrolment) wireVersion() int { return e.V }

// LogValue logs an enrolment by its ids.
func (e Enrolment) LogValue() slog.Value {
	return slog.GroupValue(slog.String("subject_id", e.SubjectID), slog.String("study_id", e.StudyID),
		slog.String("site_id", e.SiteID), slog.String("status", e.Status))
}

// Active reports whether the subject may report.
func (e Enrolment) Active() bool { return e.Status == EnrolmentActive }

// Validate checks every field and reports all problems at once.
func (e Enrolment) Validate() error {
	var errs FieldErrors
	checkID(&errs, "subject_id", e.SubjectID, true)
	checkID(&errs, "study_id", e.StudyID, true)
	checkID(&errs, "site_id", e.SiteID, true)
	switch e.Status {
	case EnrolmentActive, EnrolmentWithdrawn, EnrolmentCompleted:
	default:
		errs.add("status", "%s", fmt.Sprintf("must be %s, %s or %s", EnrolmentActive, EnrolmentWithdrawn, EnrolmentCompleted))
	}
	if e.EnrolledAt.IsZero() {
		errs.add("enrolled_at", "is required")
	}
	if e.EndedAt != nil && e.EndedAt.Before(e.EnrolledAt) {
		errs.add("ended_at", "is before enrolled_at")
	}
	return errs.err()
}
