package codecs

import (
	"encoding/json"
	"time"
)

// Audited actions. Enrolment revisions and acknowledgements are their own
// audit records (epro-enrolments and epro-commands carry who and when,
// and a revision the binding it replaced); the warehouse lands them in
// audit_events beside these. A plan adjustment is recorded here by the
// subject group when it applies it, with the plan it replaced.
const (
	AuditKeyCreate     = "apikey.create"
	AuditKeyRevoke     = "apikey.revoke"
	AuditWebhookCreate = "webhook.create"
	AuditWebhookDelete = "webhook.delete"
	AuditRulesLoaded   = "rules.loaded"
	AuditPlanAdjust    = "plan.adjust"
)

// AuditEvent is one operator action: the value of epro-audit, keyed by its
// target. AuditID is the same for a retry of the same action, so the
// warehouse stores it once. Before and After hold the record the action
// changed (an API key's or a subscription's description, never a secret
// or a patient's answer).
type AuditEvent struct {
	V       int    `json:"v"`
	AuditID string `json:"audit_id"`
	Action  string `json:"action"`
	// Actor is who acted: "key:<API key id>", "cli:<operating-system
	// user>" or "group:<goka group>".
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"` // server time
	StudyID string    `json:"study_id,omitempty"`
	// SubjectID is the subject the action concerns, if any.
	SubjectID string          `json:"subject_id,omitempty"`
	Target    string          `json:"target"` // the key id, subscription id, rule set version or subject id
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
}

func (a AuditEvent) wireVersion() int { return a.V }

// Validate checks the event's fields.
func (a AuditEvent) Validate() error {
	var errs FieldErrors
	if a.AuditID == "" {
		errs.add("audit_id", "is required")
	}
	switch a.Action {
	case AuditKeyCreate, AuditKeyRevoke, AuditWebhookCreate, AuditWebhookDelete, AuditRulesLoaded, AuditPlanAdjust:
	default:
		errs.add("action", "%q is not an audited action", a.Action)
	}
	if a.Actor == "" {
		errs.add("actor", "is required")
	}
	if a.At.IsZero() {
		errs.add("at", "is required")
	}
	if a.Target == "" {
		errs.add("target", "is required")
	}
	checkID(&errs, "study_id", a.StudyID, false)
	checkID(&errs, "subject_id", a.SubjectID, false)
	return errs.err()
}
