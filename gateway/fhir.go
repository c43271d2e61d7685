package gateway

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
)

const fhirJSON = "application/fhir+json"

// looksFHIR reports whether a body is a FHIR resource: a native envelope
// never holds resourceType, so most bodies are told apart without a decode.
func looksFHIR(body []byte) bool {
	return bytes.Contains(body, []byte(`"resourceType"`)) && fhir.IsFHIR(body)
}

// decodeFHIR maps a FHIR resource through the catalogue's forms and places
// its subject by its enrolment, then checks the mapped envelope like any
// other. The enrolment is the truth: a subject enrolled in a study the key
// does not cover is answered as not enrolled, never naming that study.
func (g *Gateway) decodeFHIR(k apikeys.Key, body []byte, pending map[string]codecs.Enrolment) (decoded, int, Problem) {
	enrolled := false
	place := func(subject string, claimed fhir.Placement) fhir.Placement {
		if claimed.StudyID != "" && claimed.SiteID != "" {
			return claimed // bind holds them to the enrolment
		}
		e, found := pending[subject]
		if !found {
			e, found, _ = g.deps.Roster.Enrolment(subject) // an unreadable roster is bind's to answer
		}
		if !found || !k.MayActFor(e.StudyID) {
			return claimed
		}
		enrolled = true
		return fhir.Placement{StudyID: e.StudyID, SiteID: e.SiteID}
	}
	m, err := g.fhir.Map(body, place)
	if errors.Is(err, fhir.ErrUnavailable) {
		g.log.Warn("questionnaires unreadable", "err", err)
		return decoded{}, http.StatusServiceUnavailable, Problem{Error: "the study's Questionnaires cannot be read right now; retry"}
	}
	if err != nil {
		status, p := problemOf(err)
		return decoded{}, status, p
	}
	s := m.Submission
	if !enrolled && (s.StudyID == "" || s.SiteID == "") && s.SubjectID != "" && codecs.CheckID(s.SubjectID) == nil {
		return decoded{sub: s, fhir: m}, http.StatusUnprocessableEntity, Problem{Error: "subject " + codecs.QuoteID(s.SubjectID) +
			" is not enrolled in a study of this API key; a FHIR resource is placed by its subject's enrolment: enrol the subject first (POST /v1/subjects)"}
	}
	value, err := json.Marshal(s)
	if err != nil {
		return decoded{}, http.StatusBadRequest, Problem{Error: "the mapped submission cannot be encoded"}
	}
	return g.check(k, decoded{sub: s, value: value, fhir: m}, pending)
}

// fhirAPI answers every error of the /fhir endpoints as an
// OperationOutcome: the gateway's own Problems (authentication, limits,
// refusals) are rewritten on their way out.
func fhirAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ow := &outcomeWriter{ResponseWriter: w}
		next.ServeHTTP(ow, r)
		if ow.status > 0 { // an error body that is not a Problem: answered as its text
			writeFHIR(w, ow.status, fhir.Outcome(ow.status, strings.TrimSpace(ow.buf.String()), nil))
		}
	})
}

type outcomeWriter struct {
	http.ResponseWriter
	status int // an error status whose Problem is being collected
	buf    bytes.Buffer
}

func (o *outcomeWriter) WriteHeader(code int) {
	if code >= 400 && !strings.HasPrefix(o.Header().Get("Content-Type"), fhirJSON) {
		o.status = code
		return
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *outcomeWriter) Write(b []byte) (int, error) {
	if o.status == 0 {
		return o.ResponseWriter.Write(b)
	}
	o.buf.Write(b)
	var p Problem
	if err := json.Unmarshal(o.buf.Bytes(), &p); err != nil {
		return len(b), nil // not all of it yet
	}
	writeFHIR(o.ResponseWriter, o.status, operationOutcome(o.status, p, nil))
	o.status = -1 // written; anything more is dropped
	return len(b), nil
}

func operationOutcome(status int, p Problem, expr func(string) string) fhir.OperationOutcome {
	fields := make([]fhir.Problem, len(p.Fields))
	for i, f := range p.Fields {
		fields[i] = fhir.Problem{Expression: f.Path, Reason: f.Reason}
		if expr != nil {
			fields[i].Expression = expr(f.Path)
		}
	}
	return fhir.Outcome(status, p.Error, fields)
}

func writeFHIR(w http.ResponseWriter, status int, v any) {
	b := fhir.Encode(v)
	w.Header().Set("Content-Type", fhirJSON+"; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// postFHIRResource is POST /fhir/QuestionnaireResponse and
// POST /fhir/Observation: 201 with the resource's id (200 for a retry of
// one already accepted), or an OperationOutcome.
func (g *Gateway) postFHIRResource(rt string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k := httpauth.KeyOf(r)
		if !contentTypeOK(w, r, true) || !g.admit(w, r, k, 1) {
			return
		}
		body, ok := readBody(w, r, int64(g.cfg.MaxBodyBytes))
		if !ok {
			return
		}
		if got, _ := fhir.ResourceType(body); got != rt {
			fail(w, http.StatusBadRequest, "the body is "+codecs.QuoteID(got)+"; this endpoint takes a "+rt+" (a Bundle goes to POST /fhir)")
			return
		}
		d, status, p := g.decode(k, body, true, nil)
		if status != 0 {
			g.metrics.items.WithLabelValues(outcomeOf(status)).Inc()
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeFHIR(w, status, operationOutcome(status, p, nil))
			return
		}
		s := d.sub
		c, err := g.beginFHIR(r, idempotencyKey(k, "", s.StudyID, s.MessageID), fingerprint(body))
		switch {
		case err != nil:
			g.claimFailed(w, r, err)
			return
		case c.Replay != nil:
			g.metrics.replayed.Inc()
			g.metrics.items.WithLabelValues("replayed").Inc()
			w.Header().Set("Idempotent-Replayed", "true")
			g.created(w, r, http.StatusOK, body, d.fhir)
			return
		}
		if !g.sendOne(w, r, c, d) {
			return
		}
		g.completeAccepted(r, c, s.MessageID)
		g.metrics.items.WithLabelValues("accepted").Inc()
		g.created(w, r, http.StatusCreated, body, d.fhir)
	}
}

// beginFHIR is claim for the FHIR endpoints, which answer a replay
// themselves: a nil claim error with Redis down means unguarded.
func (g *Gateway) beginFHIR(r *http.Request, key, fp string) (idempotency.Claim, error) {
	if g.deps.Idempotency == nil {
		return idempotency.Claim{}, nil
	}
	c, err := g.begin(r.Context(), key, fp)
	if err != nil && !isClaimRefusal(err) && r.Context().Err() == nil {
		g.metrics.degraded.WithLabelValues("idempotency").Inc()
		g.log.Debug("idempotency unavailable, sending unguarded", "err", err)
		return idempotency.Claim{}, nil
	}
	return c, err
}

func isClaimRefusal(err error) bool {
	return errors.Is(err, idempotency.ErrInProgress) || errors.Is(err, idempotency.ErrMismatch)
}

func (g *Gateway) claimFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, idempotency.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusConflict, "a request with this identifier is in progress; retry for its answer")
	case errors.Is(err, idempotency.ErrMismatch):
		fail(w, http.StatusUnprocessableEntity, "this identifier was already used for a different resource")
	}
}

// completeAccepted stores an accepted submission's outcome for its retries
// and returns it.
func (g *Gateway) completeAccepted(r *http.Request, c idempotency.Claim, messageID string) []byte {
	out, _ := json.Marshal(Accepted{MessageID: messageID, Status: "accepted"})
	if g.deps.Idempotency == nil || !c.Owned {
		return out
	}
	if err := g.complete(r.Context(), c, idempotency.Outcome{Status: http.StatusAccepted, Body: out}); err != nil {
		g.metrics.degraded.WithLabelValues("idempotency").Inc()
		g.log.Warn("idempotency outcome not stored; a retry would send again", "message_id", messageID, "err", err)
	}
	return out
}

// created answers a stored resource as FHIR does: its Location and the
// resource with its id, or, with Prefer: return=OperationOutcome, an
// informational outcome (return=minimal gets the resource too).
func (g *Gateway) created(w http.ResponseWriter, r *http.Request, status int, body []byte, m *fhir.Mapped) {
	loc := m.Location()
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", `W/"1"`)
	switch prefer(r) {
	case "OperationOutcome":
		writeFHIR(w, status, fhir.Information("stored as "+loc+" (message_id "+m.Submission.MessageID+")", nil))
	default:
		writeFHIR(w, status, withID(body, m.ID))
	}
}

func prefer(r *http.Request) string {
	for _, p := range strings.Split(r.Header.Get("Prefer"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "return="); ok {
			return v
		}
	}
	return ""
}

// withID is the resource as sent with its logical id set: resourceType and
// id first, the other members in the order sent.
func withID(body []byte, id string) json.RawMessage {
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != stdjson.Delim('{') {
		return body
	}
	var rt stdjson.RawMessage
	var rest bytes.Buffer
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return body
		}
		name, _ := tok.(string)
		var v stdjson.RawMessage
		if err := dec.Decode(&v); err != nil {
			return body
		}
		switch name {
		case "resourceType":
			rt = v
		case "id":
		default:
			k, _ := stdjson.Marshal(name)
			rest.WriteByte(',')
			rest.Write(k)
			rest.WriteByte(':')
			rest.Write(v)
		}
	}
	idJSON, _ := stdjson.Marshal(id)
	out := append([]byte(`{"resourceType":`), rt...)
	out = append(append(append(out, `,"id":`...), idJSON...), rest.Bytes()...)
	return append(out, '}')
}

// postFHIRBundle is POST /fhir: a batch or collection answers per entry;
// a transaction is all or nothing.
func (g *Gateway) postFHIRBundle(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	if !contentTypeOK(w, r, true) {
		return
	}
	body, ok := readBody(w, r, int64(g.cfg.MaxBatchBytes))
	if !ok {
		return
	}
	if rt, _ := fhir.ResourceType(body); rt != fhir.TypeBundle {
		fail(w, http.StatusBadRequest, "the body is "+codecs.QuoteID(rt)+"; POST /fhir takes a Bundle (single resources go to POST /fhir/"+rt+")")
		return
	}
	kind, entries, err := fhir.ReadBundle(body, g.cfg.MaxBatch)
	if err != nil {
		status, p := problemOf(err)
		writeFHIR(w, status, operationOutcome(status, p, nil))
		return
	}
	if !g.admit(w, r, k, len(entries)) {
		return
	}
	raws := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		raws[i] = json.RawMessage(e.Resource)
	}
	results := make([]ItemResult, len(raws))
	items := g.decodeBatch(k, raws, results)
	mapped := make([]*fhir.Mapped, len(items))
	for i, it := range items {
		if it != nil {
			mapped[i] = it.fhir
		}
	}
	transaction := kind == fhir.BundleTransaction
	if transaction && g.refuseTransaction(w, results, "") {
		return
	}
	g.claimBatch(r, items, results)
	if transaction && g.refuseTransaction(w, results, "") {
		g.releaseBatch(r, items)
		return
	}
	g.produceBatch(r, items, results)
	for i, it := range items {
		if it != nil && it.dupOf >= 0 {
			results[i] = results[it.dupOf]
		}
	}
	if transaction && g.refuseTransaction(w, results, "; the entries Kafka acknowledged are kept, so send the same Bundle again to store the rest exactly once") {
		return
	}
	out := fhir.ResponseBundle{ResourceType: fhir.TypeBundle, Type: "batch-response", Entry: make([]fhir.ResponseEntry, len(entries))}
	if transaction {
		out.Type = "transaction-response"
	}
	for i, res := range results {
		e := &out.Entry[i]
		e.FullURL = entries[i].FullURL
		g.metrics.items.WithLabelValues(outcomeOf(res.Status)).Inc()
		if res.Status == http.StatusAccepted {
			m := mapped[i]
			status := http.StatusCreated
			if res.Replayed {
				status = http.StatusOK
			}
			e.Response = fhir.EntryResponse{Status: fhir.StatusLine(status), Location: m.Location(), Etag: `W/"1"`}
			continue
		}
		oc := operationOutcome(res.Status, Problem{Error: res.Error, Fields: res.Fields}, nil)
		e.Response = fhir.EntryResponse{Status: fhir.StatusLine(res.Status), Outcome: &oc}
	}
	writeFHIR(w, http.StatusOK, out)
}

// refuseTransaction answers a transaction with a failed entry: every
// failed entry's issues in one OperationOutcome, under the first failure's
// status. false when no entry failed.
func (g *Gateway) refuseTransaction(w http.ResponseWriter, results []ItemResult, tail string) bool {
	status := 0
	var issues []fhir.Issue
	for i, res := range results {
		if res.Status == 0 || res.Status == http.StatusAccepted {
			continue
		}
		if status == 0 {
			status = res.Status
		}
		oc := operationOutcome(res.Status, Problem{Error: res.Error, Fields: res.Fields}, func(p string) string { return fhir.InEntry(i, p) })
		for _, is := range oc.Issue {
			if len(is.Expression) == 0 {
				is.Expression = []string{fhir.InEntry(i, "")}
			}
			issues = append(issues, is)
		}
	}
	if status == 0 {
		return false
	}
	issues = append([]fhir.Issue{{Severity: "error", Code: fhir.IssueCode(status),
		Diagnostics: "the transaction is refused as a whole: " + strconv.Itoa(len(issues)) + " problem(s) in its entries" + tail}}, issues...)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeFHIR(w, status, fhir.OperationOutcome{ResourceType: "OperationOutcome", Issue: issues})
	return true
}

// releaseBatch gives up the claims of a batch that is not sent.
func (g *Gateway) releaseBatch(r *http.Request, items []*batchItem) {
	if g.deps.Idempotency == nil {
		return
	}
	var owned []idempotency.Claim
	for _, it := range items {
		if it != nil && it.claim.Owned {
			owned = append(owned, it.claim)
		}
	}
	if err := g.deps.Idempotency.AbortMany(r.Context(), owned); err != nil {
		g.log.Warn("idempotency claims not released; they expire by themselves", "err", err)
	}
}
