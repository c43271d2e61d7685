package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
)

// CommandSender sends commands to epro-commands; emitters.CommandEmitter is
// one. Emit returns once Kafka acknowledged the command.
type CommandSender interface {
	Emit(ctx context.Context, c codecs.Command) error
}

// PlanRequest is the body of POST /v1/subjects/{id}/plan.
type PlanRequest struct {
	StudyID string          `json:"study_id"`
	Plan    json.RawMessage `json:"plan"`
}

// AckRequest is the body of POST /v1/alerts/{id}/ack.
type AckRequest struct {
	StudyID   string `json:"study_id"`
	SubjectID string `json:"subject_id"`
}

// CommandAccepted is the body of a 202 for an operator command.
type CommandAccepted struct {
	CommandID string `json:"command_id"`
	Fence     int64  `json:"fence,omitempty"`
	Status    string `json:"status"` // "accepted"
}

const maxCommandBytes = 16 << 10

// decodeStrict reads body into v, refusing unknown fields; "" when fine.
func decodeStrict(body []byte, v any) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10)
		}
		return "body does not match the request schema: " + err.Error()
	}
	return ""
}

// readCommand reads an operator command's body into v and checks the ids
// named in ids (path or body); false means an error was written.
func readCommand(w http.ResponseWriter, r *http.Request, v any, ids func(*codecs.FieldErrors)) bool {
	if !contentTypeOK(w, r, false) {
		return false
	}
	body, ok := readBody(w, r, maxCommandBytes)
	if !ok {
		return false
	}
	if msg := decodeStrict(body, v); msg != "" {
		fail(w, http.StatusBadRequest, msg)
		return false
	}
	var fields codecs.FieldErrors
	ids(&fields)
	if len(fields) > 0 {
		_, p := problemOf(fields)
		writeJSON(w, http.StatusBadRequest, p)
		return false
	}
	return true
}

// postPlan is POST /v1/subjects/{id}/plan: one adjustment per subject at a
// time, under a Redis lock whose fencing token travels with the command.
func (g *Gateway) postPlan(w http.ResponseWriter, r *http.Request) {
	k, subject := httpauth.KeyOf(r), r.PathValue("id")
	var req PlanRequest
	if !readCommand(w, r, &req, func(fields *codecs.FieldErrors) {
		checkField(fields, "subject_id (path)", subject)
		checkField(fields, "study_id", req.StudyID)
		if t := bytes.TrimSpace(req.Plan); len(t) == 0 || t[0] != '{' {
			*fields = append(*fields, codecs.FieldError{Path: "plan", Reason: "must be a JSON object"})
		}
	}) {
		return
	}
	if msg := httpauth.ScopeProblem(k, req.StudyID); msg != "" {
		fail(w, http.StatusForbidden, msg)
		return
	}
	if ref := g.ownSubject(subject, req.StudyID); ref != nil {
		g.refuse(w, ref)
		return
	}
	lock, err := g.deps.Locks.Obtain(r.Context(), "plan:"+g.cfg.TopicPrefix+subject, g.cfg.LockTTL)
	if errors.Is(err, fencedlock.ErrHeld) {
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusConflict, "operation in progress: another plan adjustment for this subject is running")
		return
	}
	if err != nil {
		g.log.Warn("plan lock unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, "cannot take the subject's lock right now; retry")
		return
	}
	defer func() { _ = lock.Release(context.WithoutCancel(r.Context())) }()
	cmd := codecs.Command{V: codecs.WireVersion, CommandID: "plan:" + subject + ":" + strconv.FormatInt(lock.Fence, 10),
		Kind: codecs.CommandPlanAdjusted, StudyID: req.StudyID, SubjectID: subject, At: g.now().UTC(),
		Fence: lock.Fence, Plan: req.Plan, By: k.ID}
	g.sendCommand(w, r, cmd)
}

// postAck is POST /v1/alerts/{id}/ack. Acknowledging twice is harmless: the
// command id is derived from the alert id.
func (g *Gateway) postAck(w http.ResponseWriter, r *http.Request) {
	k, alert := httpauth.KeyOf(r), r.PathValue("id")
	var req AckRequest
	if !readCommand(w, r, &req, func(fields *codecs.FieldErrors) {
		checkField(fields, "alert_id (path)", alert)
		checkField(fields, "study_id", req.StudyID)
		checkField(fields, "subject_id", req.SubjectID)
	}) {
		return
	}
	if msg := httpauth.ScopeProblem(k, req.StudyID); msg != "" {
		fail(w, http.StatusForbidden, msg)
		return
	}
	if ref := g.ownSubject(req.SubjectID, req.StudyID); ref != nil {
		g.refuse(w, ref)
		return
	}
	if ref := g.ownAlert(alert, req.SubjectID, req.StudyID); ref != nil {
		g.refuse(w, ref)
		return
	}
	cmd := codecs.Command{V: codecs.WireVersion, CommandID: "ack:" + alert, Kind: codecs.CommandAlertAcknowledged,
		StudyID: req.StudyID, SubjectID: req.SubjectID, At: g.now().UTC(), AlertID: alert, By: k.ID}
	g.sendCommand(w, r, cmd)
}

// AlertIndex answers whose alert an id is, from a local copy of
// epro-alert-index; keyview.View[codecs.AlertOwner] is one.
type AlertIndex interface {
	Get(alertID string) (codecs.AlertOwner, bool, error)
}

// ownAlert checks that alert was raised for subject of study. An alert is
// in the index once the subject group emitted it (the index is written with
// the alert), so a nurse who saw it on the dashboard finds it there; one
// raised in the last moments may be refused, and a retry succeeds.
func (g *Gateway) ownAlert(alert, subject, study string) *refusal {
	o, found, err := g.deps.Alerts.Get(alert)
	switch {
	case err != nil:
		g.log.Warn("alert index unreadable", "err", err)
		return &refusal{http.StatusServiceUnavailable, "the alert index cannot be read right now; retry"}
	case !found || o.SubjectID != subject || o.StudyID != study:
		return &refusal{http.StatusNotFound, "alert " + codecs.QuoteID(alert) + " is not an alert of subject " + codecs.QuoteID(subject) +
			" (an alert raised in the last second may not be known yet; retry)"}
	}
	return nil
}

func (g *Gateway) sendCommand(w http.ResponseWriter, r *http.Request, cmd codecs.Command) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.KafkaTimeout)
	defer cancel()
	if err := g.deps.Commands.Emit(ctx, cmd); err != nil {
		var fe codecs.FieldErrors
		if errors.As(err, &fe) {
			status, p := problemOf(fe)
			writeJSON(w, status, p)
			return
		}
		g.log.Warn("command not acknowledged by Kafka", "kind", cmd.Kind, "subject_id", cmd.SubjectID, "err", err)
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, "Kafka did not acknowledge the command, so it is not accepted; retry")
		return
	}
	g.log.Info("operator command accepted", "kind", cmd.Kind, "command_id", cmd.CommandID, "by", cmd.By)
	writeJSON(w, http.StatusAccepted, CommandAccepted{CommandID: cmd.CommandID, Fence: cmd.Fence, Status: "accepted"})
}

func checkField(errs *codecs.FieldErrors, path, v string) {
	if err := codecs.CheckID(v); err != nil {
		var fe codecs.FieldErrors
		errors.As(err, &fe)
		*errs = append(*errs, codecs.FieldError{Path: path, Reason: fe[0].Reason})
	}
}
