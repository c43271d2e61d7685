package codecs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Command kinds on epro-commands.
const (
	// CommandPlanAdjusted sets a subject's medication plan; it carries the
	// fencing token of the operator's lock, and a stale token is rejected.
	CommandPlanAdjusted = "plan_adjusted"
	// CommandAlertAcknowledged marks an alert as seen by a nurse.
	CommandAlertAcknowledged = "alert_acknowledged"
	// CommandCheckSchedule asks the subject group to evaluate the
	// time-driven rules (missed diary) as of At.
	CommandCheckSchedule = "check_schedule"
)

// Command is an operator's or a scheduler's instruction for one subject.
type Command struct {
	V         int             `json:"v"`
	CommandID string          `json:"command_id"`
	Kind      string          `json:"kind"`
	StudyID   string          `json:"study_id,omitempty"`
	SubjectID string          `json:"subject_id"`
	At        time.Time       `json:"at"`
	Fence     int64           `json:"fence,omitempty"`
	Plan      json.RawMessage `json:"plan,omitempty"`
	AlertID   string          `json:"alert_id,omitempty"`
	By        string          `json:"by,omitempty"`
	// SiteID and EnrolledAt come with a check_schedule for an enrolled
	// subject that has never reported: its silence counts from enrolment.
	SiteID     string     `json:"site_id,omitempty"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"`
}

func (c Command) wireVersion() int { return c.V }

// Validate checks a command's fields for its kind.
func (c Command) Validate() error {
	var errs FieldErrors
	checkID(&errs, "command_id", c.CommandID, true)
	checkID(&errs, "subject_id", c.SubjectID, true)
	checkID(&errs, "study_id", c.StudyID, false)
	checkID(&errs, "site_id", c.SiteID, false)
	if c.At.IsZero() {
		errs.add("at", "is required")
	}
	switch c.Kind {
	case CommandPlanAdjusted:
		if c.Fence <= 0 {
			errs.add("fence", "a positive fencing token is required")
		}
		if len(c.Plan) == 0 || !json.Valid(c.Plan) {
			errs.add("plan", "must be a JSON value")
		}
	case CommandAlertAcknowledged:
		checkID(&errs, "alert_id", c.AlertID, true)
	case CommandCheckSchedule:
	default:
		errs.add("kind", "%s", fmt.Sprintf("must be one of %s, %s, %s", CommandPlanAdjusted, CommandAlertAcknowledged, CommandCheckSchedule))
	}
	return errs.err()
}
