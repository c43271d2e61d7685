package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// Roster is the study registry's enrolled subjects, read locally;
// *catalog.Roster is one. Both methods must be safe for concurrent use.
type Roster interface {
	Enrolment(subject string) (codecs.Enrolment, bool, error)
	Remember(e codecs.Enrolment)
}

// EnrolmentSender writes enrolments to epro-enrolments;
// emitters.EnrolmentEmitter is one. Emit returns once Kafka acknowledged.
type EnrolmentSender interface {
	Emit(ctx context.Context, e codecs.Enrolment) error
}

// refusal is an answer other than 202 for one submission.
type refusal struct {
	status int
	msg    string
}

func notEnrolled(subject, study string) refusal {
	return refusal{http.StatusUnprocessableEntity, "subject " + codecs.QuoteID(subject) + " is not enrolled in study " + codecs.QuoteID(study)}
}

// bind checks s against its subject's enrolment, the server-side truth:
// the subject must be enrolled (active) in the submission's study and at
// its site. For an unknown subject of a first-report study it returns the
// enrolment to write before the submission. pending holds the enrolments
// earlier items of the same request will write. The key's scope over
// s.StudyID is checked before; a refusal never names another study.
func (g *Gateway) bind(s codecs.Submission, pending map[string]codecs.Enrolment) (*codecs.Enrolment, *refusal) {
	e, found := pending[s.SubjectID]
	if !found {
		var err error
		if e, found, err = g.deps.Roster.Enrolment(s.SubjectID); err != nil {
			g.log.Warn("study registry unreadable", "err", err)
			return nil, &refusal{http.StatusServiceUnavailable, "the study registry cannot be read right now; retry"}
		}
	}
	if found {
		switch {
		case e.StudyID != s.StudyID:
			r := notEnrolled(s.SubjectID, s.StudyID)
			return nil, &r
		case !e.Active():
			return nil, &refusal{http.StatusConflict, fmt.Sprintf("subject %s is %s in study %s; its reports are no longer accepted",
				codecs.QuoteID(s.SubjectID), e.Status, codecs.QuoteID(e.StudyID))}
		case e.SiteID != s.SiteID:
			return nil, &refusal{http.StatusUnprocessableEntity, fmt.Sprintf("subject %s is enrolled at site %s of study %s, not at %s",
				codecs.QuoteID(s.SubjectID), codecs.QuoteID(e.SiteID), codecs.QuoteID(e.StudyID), codecs.QuoteID(s.SiteID))}
		}
		return nil, nil
	}
	if st, _ := g.cfg.Catalogue.Study(s.StudyID); st.Enrollment == catalog.Required {
		r := notEnrolled(s.SubjectID, s.StudyID)
		r.msg += "; enrol it first (POST /v1/subjects)"
		return nil, &r
	}
	now := g.now().UTC()
	return &codecs.Enrolment{V: codecs.WireVersion, SubjectID: s.SubjectID, StudyID: s.StudyID, SiteID: s.SiteID,
		Status: codecs.EnrolmentActive, EnrolledAt: now, Revision: 1, By: "first-report", At: now}, nil
}

// enrolFirstReport writes a first report's enrolment through the registrar,
// under the subject's registry lock: when another request (on any gateway)
// enrolled the subject since bind looked, at another study or site, or is
// enrolling it now, the submission is refused instead. err is an outage.
func (g *Gateway) enrolFirstReport(ctx context.Context, e codecs.Enrolment) (*refusal, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.KafkaTimeout)
	defer cancel()
	outcome, err := g.registrar.Enrol(ctx, e)
	// Concurrent first reports of one subject (an app's burst) wait for the
	// holder's single Kafka write, then find the subject enrolled.
	for wait := 2 * time.Millisecond; errors.Is(err, catalog.ErrBusy); wait = min(2*wait, 50*time.Millisecond) {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			outcome, err = g.registrar.Enrol(ctx, e)
			continue
		}
		break
	}
	switch {
	case errors.Is(err, catalog.ErrBusy):
		return &refusal{http.StatusConflict, "subject " + codecs.QuoteID(e.SubjectID) +
			" is being enrolled by another request right now; retry with the same message_id"}, nil
	case err != nil:
		return nil, err
	case outcome == catalog.Conflict:
		return &refusal{http.StatusConflict, "subject " + codecs.QuoteID(e.SubjectID) +
			" was enrolled by another request meanwhile, not in study " + codecs.QuoteID(e.StudyID) + " at site " +
			codecs.QuoteID(e.SiteID) + "; its enrolment decides, so this submission is not accepted"}, nil
	case outcome == catalog.Written:
		g.log.Info("subject enrolled", "enrolment", e, "by", e.By)
	}
	return nil, nil
}

// EnrolRequest is one subject of POST /v1/subjects.
type EnrolRequest struct {
	SubjectID  string     `json:"subject_id"`
	StudyID    string     `json:"study_id"`
	SiteID     string     `json:"site_id"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"` // default: now
}

// EnrolResult is the outcome for one subject.
type EnrolResult struct {
	Index      int               `json:"index"`
	Status     int               `json:"status"` // 201 enrolled, 200 already so, or the refusal's
	Enrolment  *codecs.Enrolment `json:"enrolment,omitempty"`
	Error      string            `json:"error,omitempty"`
	Fields     []FieldProblem    `json:"fields,omitempty"`
	SubjectID  string            `json:"subject_id,omitempty"`
	Unaffected bool              `json:"unaffected,omitempty"` // already enrolled exactly so
}

// EnrolBatch is the body of a batch POST /v1/subjects and of its answer.
type EnrolBatch struct {
	Subjects []EnrolRequest `json:"subjects,omitempty"`
	Results  []EnrolResult  `json:"results,omitempty"`
}

// postSubjects is POST /v1/subjects: one subject, or {"subjects": [...]}.
func (g *Gateway) postSubjects(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	if !contentTypeOK(w, r, false) {
		return
	}
	body, ok := readBody(w, r, int64(g.cfg.MaxBatchBytes))
	if !ok {
		return
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil || probe == nil {
		fail(w, http.StatusBadRequest, `body must be a JSON object: one subject, or {"subjects": [...]}`)
		return
	}
	_, batch := probe["subjects"]
	var reqs []EnrolRequest
	if batch {
		var b EnrolBatch
		if msg := decodeStrict(body, &b); msg != "" {
			fail(w, http.StatusBadRequest, msg)
			return
		}
		reqs = b.Subjects
		if len(reqs) == 0 || len(reqs) > g.cfg.MaxBatch {
			fail(w, http.StatusBadRequest, fmt.Sprintf("subjects must hold 1 to %d subjects", g.cfg.MaxBatch))
			return
		}
	} else {
		var one EnrolRequest
		if msg := decodeStrict(body, &one); msg != "" {
			fail(w, http.StatusBadRequest, msg)
			return
		}
		reqs = []EnrolRequest{one}
	}
	results := make([]EnrolResult, len(reqs))
	for i, req := range reqs {
		results[i] = g.enrolOne(r.Context(), k, req)
		results[i].Index = i
	}
	if !batch {
		g.answer(w, results[0]) // an error is a Problem, as on every endpoint
		return
	}
	writeJSON(w, http.StatusOK, EnrolBatch{Results: results})
}

// enrolOne enrols one subject under the subject's registry lock.
func (g *Gateway) enrolOne(ctx context.Context, k apikeys.Key, req EnrolRequest) EnrolResult {
	res := EnrolResult{SubjectID: req.SubjectID}
	var fields codecs.FieldErrors
	checkField(&fields, "subject_id", req.SubjectID)
	checkField(&fields, "study_id", req.StudyID)
	checkField(&fields, "site_id", req.SiteID)
	if len(fields) == 0 {
		studyErr, siteErr := g.cfg.Catalogue.Check(req.StudyID, req.SiteID)
		if studyErr != nil {
			fields = append(fields, codecs.FieldError{Path: "study_id", Reason: studyErr.Error()})
		} else if siteErr != nil {
			fields = append(fields, codecs.FieldError{Path: "site_id", Reason: siteErr.Error()})
		}
	}
	if len(fields) > 0 {
		res.Status, res.Error, res.Fields = http.StatusBadRequest, "invalid enrolment", fieldProblems(fields)
		return res
	}
	if msg := httpauth.ScopeProblem(k, req.StudyID); msg != "" {
		res.Status, res.Error = http.StatusForbidden, msg
		return res
	}
	return g.changeEnrolment(ctx, req.SubjectID, func(cur codecs.Enrolment, found bool) (codecs.Enrolment, *refusal) {
		if found {
			if cur.StudyID == req.StudyID && cur.SiteID == req.SiteID && cur.Active() {
				return cur, nil // already so: nothing to write
			}
			return cur, &refusal{http.StatusConflict, "subject " + codecs.QuoteID(req.SubjectID) +
				" is already enrolled elsewhere; a site change is POST /v1/subjects/{id}/transfer"}
		}
		now := g.now().UTC()
		at := now
		if req.EnrolledAt != nil {
			at = req.EnrolledAt.UTC()
		}
		return codecs.Enrolment{V: codecs.WireVersion, SubjectID: req.SubjectID, StudyID: req.StudyID, SiteID: req.SiteID,
			Status: codecs.EnrolmentActive, EnrolledAt: at, Revision: 1, By: k.ID, At: now}, nil
	})
}

// TransferRequest is the body of POST /v1/subjects/{id}/transfer.
type TransferRequest struct {
	StudyID string `json:"study_id"`
	SiteID  string `json:"site_id"` // the new site
}

// WithdrawRequest is the body of POST /v1/subjects/{id}/withdraw.
type WithdrawRequest struct {
	StudyID string `json:"study_id"`
	Status  string `json:"status"` // withdrawn or completed
}

// postTransfer is POST /v1/subjects/{id}/transfer: the subject moves to
// another site of its study.
func (g *Gateway) postTransfer(w http.ResponseWriter, r *http.Request) {
	k, subject := httpauth.KeyOf(r), r.PathValue("id")
	var req TransferRequest
	if !readCommand(w, r, &req, func(fields *codecs.FieldErrors) {
		checkField(fields, "subject_id (path)", subject)
		checkField(fields, "study_id", req.StudyID)
		checkField(fields, "site_id", req.SiteID)
		if len(*fields) == 0 {
			if _, siteErr := g.cfg.Catalogue.Check(req.StudyID, req.SiteID); siteErr != nil {
				*fields = append(*fields, codecs.FieldError{Path: "site_id", Reason: siteErr.Error()})
			}
		}
	}) {
		return
	}
	g.answer(w, g.changeOwn(r.Context(), k, subject, req.StudyID, func(cur codecs.Enrolment) (codecs.Enrolment, *refusal) {
		if !cur.Active() {
			return cur, &refusal{http.StatusConflict, "subject " + codecs.QuoteID(subject) + " is " + cur.Status + "; only an active subject can move"}
		}
		if cur.SiteID == req.SiteID {
			return cur, nil
		}
		next := cur
		next.SiteID, next.Revision, next.By, next.At = req.SiteID, cur.Revision+1, k.ID, g.now().UTC()
		return next, nil
	}))
}

// postWithdraw is POST /v1/subjects/{id}/withdraw: the subject leaves the
// study (withdrawn) or finishes it (completed); its reports are refused.
func (g *Gateway) postWithdraw(w http.ResponseWriter, r *http.Request) {
	k, subject := httpauth.KeyOf(r), r.PathValue("id")
	var req WithdrawRequest
	if !readCommand(w, r, &req, func(fields *codecs.FieldErrors) {
		checkField(fields, "subject_id (path)", subject)
		checkField(fields, "study_id", req.StudyID)
		if req.Status != codecs.EnrolmentWithdrawn && req.Status != codecs.EnrolmentCompleted {
			*fields = append(*fields, codecs.FieldError{Path: "status", Reason: "must be withdrawn or completed"})
		}
	}) {
		return
	}
	g.answer(w, g.changeOwn(r.Context(), k, subject, req.StudyID, func(cur codecs.Enrolment) (codecs.Enrolment, *refusal) {
		if cur.Status == req.Status {
			return cur, nil
		}
		if !cur.Active() {
			return cur, &refusal{http.StatusConflict, "subject " + codecs.QuoteID(subject) + " is already " + cur.Status}
		}
		now := g.now().UTC()
		next := cur
		next.Status, next.EndedAt, next.Revision, next.By, next.At = req.Status, &now, cur.Revision+1, k.ID, now
		return next, nil
	}))
}

func (g *Gateway) answer(w http.ResponseWriter, res EnrolResult) {
	if res.Status >= 400 {
		if len(res.Fields) > 0 {
			writeJSON(w, res.Status, Problem{Error: res.Error, Fields: res.Fields})
			return
		}
		if res.Status == http.StatusServiceUnavailable || res.Status == http.StatusConflict && res.Error == errBusy {
			w.Header().Set("Retry-After", "1")
		}
		fail(w, res.Status, res.Error)
		return
	}
	writeJSON(w, res.Status, res)
}

// changeOwn applies change to a subject the key's study has enrolled; any
// other subject is "not enrolled in study", whether it exists elsewhere or
// not.
func (g *Gateway) changeOwn(ctx context.Context, k apikeys.Key, subject, study string,
	change func(cur codecs.Enrolment) (codecs.Enrolment, *refusal)) EnrolResult {
	if msg := httpauth.ScopeProblem(k, study); msg != "" {
		return EnrolResult{Status: http.StatusForbidden, Error: msg}
	}
	return g.changeEnrolment(ctx, subject, func(cur codecs.Enrolment, found bool) (codecs.Enrolment, *refusal) {
		if !found || cur.StudyID != study {
			r := notEnrolled(subject, study)
			r.status = http.StatusNotFound
			return cur, &r
		}
		return change(cur)
	})
}

const errBusy = "another change of this subject's enrolment is in progress; retry"

// changeEnrolment reads a subject's enrolment and writes what change makes
// of it, through the registrar (under the subject's registry lock, shared
// with every gateway and `eprostream enroll`). An unchanged enrolment is
// answered 200 and not written.
func (g *Gateway) changeEnrolment(ctx context.Context, subject string,
	change func(cur codecs.Enrolment, found bool) (codecs.Enrolment, *refusal)) EnrolResult {
	res := EnrolResult{SubjectID: subject}
	var ref *refusal
	ctx, cancel := context.WithTimeout(ctx, g.cfg.KafkaTimeout)
	defer cancel()
	next, found, outcome, err := g.registrar.Change(ctx, subject, func(cur codecs.Enrolment, found bool) (codecs.Enrolment, bool) {
		var next codecs.Enrolment
		next, ref = change(cur, found)
		return next, ref == nil
	})
	var fe codecs.FieldErrors
	switch {
	case errors.Is(err, catalog.ErrBusy):
		res.Status, res.Error = http.StatusConflict, errBusy
	case errors.As(err, &fe):
		res.Status, res.Error, res.Fields = http.StatusBadRequest, "invalid enrolment", fieldProblems(fe)
	case err != nil:
		g.log.Warn("enrolment not changed", "subject_id", subject, "err", err)
		res.Status, res.Error = http.StatusServiceUnavailable, "the study registry (Redis lock, Kafka) did not take the change, so it is not made; retry"
	case ref != nil:
		res.Status, res.Error = ref.status, ref.msg
	case outcome == catalog.Unchanged:
		res.Status, res.Enrolment, res.Unaffected = http.StatusOK, &next, true
	case found:
		res.Status, res.Enrolment = http.StatusOK, &next
		g.log.Info("enrolment changed", "enrolment", next, "revision", next.Revision, "by", next.By)
	default:
		res.Status, res.Enrolment = http.StatusCreated, &next
		g.log.Info("subject enrolled", "enrolment", next, "by", next.By)
	}
	return res
}

// ownSubject checks that subject is enrolled in study, the key's (an
// operator command's target); a refusal never names another study.
func (g *Gateway) ownSubject(subject, study string) *refusal {
	e, found, err := g.deps.Roster.Enrolment(subject)
	switch {
	case err != nil:
		g.log.Warn("study registry unreadable", "err", err)
		return &refusal{http.StatusServiceUnavailable, "the study registry cannot be read right now; retry"}
	case !found || e.StudyID != study:
		r := notEnrolled(subject, study)
		r.status = http.StatusNotFound
		return &r
	}
	return nil
}

// refuse answers a refusal; a 503 says when to retry.
func (g *Gateway) refuse(w http.ResponseWriter, ref *refusal) {
	if ref.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	fail(w, ref.status, ref.msg)
}

// fieldProblems is the field list of a 400 for fe.
func fieldProblems(fe codecs.FieldErrors) []FieldProblem {
	_, p := problemOf(fe)
	return p.Fields
}
