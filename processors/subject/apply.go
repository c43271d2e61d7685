package subject

import (
	"fmt"
	"slices"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/rules"
)

// ErrStaleFence is wrapped when a plan adjustment carries a fencing token no
// newer than the one that wrote the current plan.
var ErrStaleFence = fmt.Errorf("subject: stale fencing token")

// ApplySubmission folds c into st. It returns the new state, the alerts
// raised, and false when c was applied before: then nothing changes and the
// alerts are those c raised when it was applied (from the outbox), to be
// sent again in case a crash lost them.
// st is consumed: its maps are reused by the new state (the group passes a
// state freshly decoded from the table; callers that keep st pass a Clone).
func ApplySubmission(st codecs.SubjectState, c codecs.CleanSubmission, set *rules.Set, now time.Time) (codecs.SubjectState, []codecs.Alert, bool) {
	if st.HasApplied(c.MessageID) {
		return st, st.Raised(c.MessageID), false
	}
	next := st
	next.V = codecs.WireVersion
	alerts := set.Apply(&next, c, now)
	next.MarkAppliedSum(c.MessageID, codecs.BodySum(c))
	next.Remember(c.MessageID, alerts)
	return next, alerts, true
}

// ApplyCommand folds cmd into st. It returns the new state, the alerts
// raised, whether anything changed, and an error for a command that is
// refused (which changes nothing).
func ApplyCommand(st codecs.SubjectState, cmd codecs.Command, set *rules.Set, now time.Time) (codecs.SubjectState, []codecs.Alert, bool, error) {
	if st.HasApplied(cmd.CommandID) {
		return st, st.Raised(cmd.CommandID), false, nil
	}
	next := st.Clone()
	next.V = codecs.WireVersion
	if next.SubjectID == "" {
		next.SubjectID, next.StudyID = cmd.SubjectID, cmd.StudyID
	}
	var alerts []codecs.Alert
	switch cmd.Kind {
	case codecs.CommandPlanAdjusted:
		if cmd.Fence <= next.Fence {
			return st, nil, false, fmt.Errorf("%w: token %d, the plan was written with %d", ErrStaleFence, cmd.Fence, next.Fence)
		}
		next.PlanBefore, next.Plan, next.Fence = next.Plan, cmd.Plan, cmd.Fence
	case codecs.CommandAlertAcknowledged:
		if !slices.Contains(next.Acked, cmd.AlertID) {
			next.Acked = append(next.Acked, cmd.AlertID)
			if over := len(next.Acked) - codecs.MaxAcked; over > 0 {
				next.Acked = next.Acked[over:]
			}
		}
	case codecs.CommandCheckSchedule:
		if next.LastAt == 0 && next.EnrolledAt == 0 && cmd.EnrolledAt != nil {
			// An enrolled subject that never reported: known from the roster.
			next.EnrolledAt, next.SiteID = cmd.EnrolledAt.Unix(), cmd.SiteID
		}
		alerts = set.CheckSchedule(&next, cmd.At, now)
		if len(alerts) == 0 && len(next.Open) == len(st.Open) && next.EnrolledAt == st.EnrolledAt {
			return st, nil, false, nil // nothing to remember: keep the table quiet
		}
	}
	next.MarkApplied(cmd.CommandID)
	next.Remember(cmd.CommandID, alerts)
	return next, alerts, true, nil
}

// PlanAudit is the audit event of plan adjustment cmd once st holds it (st
// was written with cmd's token): the plan before and after. ok is false
// for any other command, and for an adjustment a later one replaced.
func PlanAudit(st codecs.SubjectState, cmd codecs.Command) (codecs.AuditEvent, bool) {
	if cmd.Kind != codecs.CommandPlanAdjusted || st.Fence != cmd.Fence || !st.HasApplied(cmd.CommandID) {
		return codecs.AuditEvent{}, false
	}
	return audit.PlanAdjusted(cmd, st.PlanBefore), true
}
