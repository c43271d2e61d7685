package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
)

// contentTypeOK checks the content type; false means a 415 was written.
func contentTypeOK(w http.ResponseWriter, r *http.Request, fhirOK bool) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !(fhirOK && mt == "application/fhir+json")) {
		want := "application/json"
		if fhirOK {
			want += " or application/fhir+json"
		}
		fail(w, http.StatusUnsupportedMediaType, "Content-Type must be "+want)
		return false
	}
	return true
}

// readBody reads at most limit bytes; false means an error was written.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		fail(w, http.StatusRequestEntityTooLarge, "body is over the limit of "+strconv.FormatInt(limit, 10)+" bytes")
		return nil, false
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "could not read the body")
		return nil, false
	}
	return body, true
}

// decoded is one submission on its way through: what goes to Kafka (the
// body, or a FHIR resource's mapped envelope) and, for a FHIR resource,
// its mapping (the answer echoes its id; errors name its elements).
type decoded struct {
	sub   codecs.Submission
	enrol *codecs.Enrolment // the first-report enrolment to write first, if any
	value []byte
	fhir  *fhir.Mapped
}

// decode validates one submission for key and checks it against its
// subject's enrolment: 0 and the submission, or the status and problem to
// answer. pending are the enrolments earlier items of the same request
// will write.
func (g *Gateway) decode(k apikeys.Key, body []byte, fhirOnly bool, pending map[string]codecs.Enrolment) (decoded, int, Problem) {
	if looksFHIR(body) {
		return g.decodeFHIR(k, body, pending)
	}
	s, err := codecs.ParseSubmission(body)
	if err != nil {
		status, p := problemOf(err)
		return decoded{sub: s}, status, p
	}
	if fhirOnly {
		status, p := problemOf(codecs.FieldErrors{{Path: "resourceType", Reason: "is required with Content-Type application/fhir+json"}})
		return decoded{sub: s}, status, p
	}
	return g.check(k, decoded{sub: s, value: body}, pending)
}

// check runs the envelope, scope, catalogue and enrolment checks on d.
func (g *Gateway) check(k apikeys.Key, d decoded, pending map[string]codecs.Enrolment) (decoded, int, Problem) {
	s := d.sub
	var fields codecs.FieldErrors
	if err := s.Validate(g.now()); err != nil {
		if !errors.As(err, &fields) {
			status, p := problemOf(err)
			return d, status, p
		}
	}
	if msg := httpauth.ScopeProblem(k, s.StudyID); msg != "" && s.StudyID != "" {
		return d, http.StatusForbidden, Problem{Error: msg}
	}
	// Study, site, instrument and items: the check intake runs too.
	fields = append(fields, g.cfg.Catalogue.CheckSubmission(s)...)
	if len(fields) > 0 {
		for i := range fields {
			fields[i].Path = d.fhir.Expression(fields[i].Path)
		}
		status, p := problemOf(fields)
		return d, status, p
	}
	enrol, ref := g.bind(s, pending)
	if ref != nil {
		return d, ref.status, Problem{Error: ref.msg}
	}
	d.enrol = enrol
	return d, 0, Problem{}
}

// idempotencyKey is the key a request's outcome is stored under: the
// message_id within its study (the id scope of the whole system: whichever
// API key sends it, the subject group and the warehouse see the same id),
// or the Idempotency-Key header when sent, which is the client's own and so
// scoped to its API key. '/' never occurs in a study id.
func idempotencyKey(k apikeys.Key, header, study, messageID string) string {
	if header != "" {
		return k.ID + ":h:" + header
	}
	return "study/" + study + "/m:" + messageID
}

func fingerprint(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:12])
}

func validIdempotencyHeader(h string) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 0x21 || h[i] > 0x7e {
			return false
		}
	}
	return true
}

// postSubmission is POST /v1/submissions.
func (g *Gateway) postSubmission(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	idemHeader := r.Header.Get("Idempotency-Key")
	if idemHeader != "" && !validIdempotencyHeader(idemHeader) {
		fail(w, http.StatusBadRequest, "Idempotency-Key must be 1-255 printable ASCII characters")
		return
	}
	if !contentTypeOK(w, r, true) || !g.admit(w, r, k, 1) {
		return
	}
	body, ok := readBody(w, r, int64(g.cfg.MaxBodyBytes))
	if !ok {
		return
	}
	d, status, p := g.decode(k, body, isFHIRContent(r), nil)
	s := d.sub
	if status != 0 {
		g.metrics.items.WithLabelValues(outcomeOf(status)).Inc()
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, status, p)
		return
	}
	claim, ok := g.claim(w, r, idempotencyKey(k, idemHeader, s.StudyID, s.MessageID), fingerprint(body))
	if !ok {
		return
	}
	if !g.sendOne(w, r, claim, d) {
		return
	}
	out := g.completeAccepted(r, claim, s.MessageID)
	g.metrics.items.WithLabelValues("accepted").Inc()
	writeRaw(w, http.StatusAccepted, out)
}

// sendOne writes d's first-report enrolment, if any, then d to Kafka;
// false means the claim was released and the answer (503, or the
// enrolment's refusal) written.
func (g *Gateway) sendOne(w http.ResponseWriter, r *http.Request, c idempotency.Claim, d decoded) bool {
	if d.enrol != nil {
		ref, err := g.enrolFirstReport(r.Context(), *d.enrol)
		if ref != nil || err != nil {
			g.abandon(r, c)
		}
		switch {
		case err != nil:
			g.unavailable(w, err)
			return false
		case ref != nil:
			g.refuse(w, ref)
			return false
		}
	}
	if errs := g.produce(r.Context(), []record{{key: d.sub.SubjectID, value: d.value}}); errs[0] != nil {
		g.abandon(r, c)
		g.unavailable(w, errs[0])
		return false
	}
	return true
}

func isFHIRContent(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/fhir+json"
}

// claim begins the idempotent part of a request; false means the answer
// (a replay, 409 or 422) was written.
func (g *Gateway) claim(w http.ResponseWriter, r *http.Request, key, fp string) (idempotency.Claim, bool) {
	if g.deps.Idempotency == nil {
		return idempotency.Claim{}, true
	}
	c, err := g.begin(r.Context(), key, fp)
	switch {
	case err == nil && c.Replay != nil:
		g.metrics.replayed.Inc()
		g.metrics.items.WithLabelValues("replayed").Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, c.Replay.Status, c.Replay.Body)
		return c, false
	case err == nil:
		return c, true
	case errors.Is(err, idempotency.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusConflict, "a request with this message_id or Idempotency-Key is in progress; retry for its answer")
		return c, false
	case errors.Is(err, idempotency.ErrMismatch):
		fail(w, http.StatusUnprocessableEntity, "this message_id or Idempotency-Key was already used for a different body")
		return c, false
	case r.Context().Err() != nil:
		return c, false
	default:
		// Redis is unreachable: go on unguarded; downstream drops duplicates by message_id.
		g.metrics.degraded.WithLabelValues("idempotency").Inc()
		g.log.Debug("idempotency unavailable, sending unguarded", "err", err)
		return idempotency.Claim{}, true
	}
}

func (g *Gateway) abandon(r *http.Request, c idempotency.Claim) {
	if g.deps.Idempotency == nil || !c.Owned {
		return
	}
	if err := g.deps.Idempotency.Abort(r.Context(), c); err != nil {
		g.log.Warn("idempotency claim not released; it expires by itself", "err", err)
	}
}

func (g *Gateway) unavailable(w http.ResponseWriter, err error) {
	g.metrics.items.WithLabelValues("unavailable").Inc()
	g.log.Warn("submission not acknowledged by Kafka", "err", err)
	w.Header().Set("Retry-After", "1")
	fail(w, http.StatusServiceUnavailable, "Kafka did not acknowledge the submission, so it is not accepted; "+
		"retry with the same message_id (retries are deduplicated)")
}

func outcomeOf(status int) string {
	switch {
	case status == http.StatusAccepted:
		return "accepted"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status == http.StatusForbidden:
		return "refused"
	default:
		return "invalid"
	}
}
