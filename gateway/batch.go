package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
)

// BatchResult is the answer to POST /v1/submissions:batch.
type BatchResult struct {
	Accepted int          `json:"accepted"`
	Failed   int          `json:"failed"`
	Results  []ItemResult `json:"results"`
}

// ItemResult is the outcome of one submission of a batch; Status is the
// HTTP status a single POST of it would have had.
type ItemResult struct {
	Index     int            `json:"index"`
	Status    int            `json:"status"`
	MessageID string         `json:"message_id,omitempty"`
	Error     string         `json:"error,omitempty"`
	Fields    []FieldProblem `json:"fields,omitempty"`
	Replayed  bool           `json:"replayed,omitempty"`
}

// batchItem is a submission of a batch on its way through.
type batchItem struct {
	raw     []byte // what goes to Kafka
	fhir    *fhir.Mapped
	enrol   *codecs.Enrolment // first-report enrolment to write before it
	subject string
	key     string // idempotency key
	fp      string
	claim   idempotency.Claim
	dupOf   int // index of the first item with the same message_id, or -1
}

// postBatch is POST /v1/submissions:batch.
func (g *Gateway) postBatch(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	if r.Header.Get("Idempotency-Key") != "" {
		fail(w, http.StatusBadRequest, "Idempotency-Key is for single submissions; a batch is deduplicated by each item's message_id")
		return
	}
	if !contentTypeOK(w, r, false) {
		return
	}
	body, ok := readBody(w, r, int64(g.cfg.MaxBatchBytes))
	if !ok {
		return
	}
	raws, msg := splitBatch(body, g.cfg.MaxBatch)
	if msg != "" {
		status := http.StatusBadRequest
		if len(raws) > g.cfg.MaxBatch {
			status = http.StatusRequestEntityTooLarge
		}
		fail(w, status, msg)
		return
	}
	if !g.admit(w, r, k, len(raws)) {
		return
	}
	res := BatchResult{Results: make([]ItemResult, len(raws))}
	items := g.decodeBatch(k, raws, res.Results)
	g.claimBatch(r, items, res.Results)
	g.produceBatch(r, items, res.Results)
	for i, it := range items {
		if it != nil && it.dupOf >= 0 {
			first := res.Results[it.dupOf]
			first.Index = i
			res.Results[i] = first
		}
	}
	for _, ir := range res.Results {
		if ir.Status == http.StatusAccepted {
			res.Accepted++
		} else {
			res.Failed++
		}
		g.metrics.items.WithLabelValues(outcomeOf(ir.Status)).Inc()
	}
	writeJSON(w, http.StatusOK, res)
}

// splitBatch reads {"submissions": [...]}; msg says what is wrong.
func splitBatch(body []byte, limit int) ([]json.RawMessage, string) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, `body must be a JSON object {"submissions": [...]}`
	}
	for name := range doc {
		if name != "submissions" {
			return nil, "unknown field " + codecs.QuoteID(name) + `; the body is {"submissions": [...]}`
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(doc["submissions"], &raws); err != nil || bytes.Equal(bytes.TrimSpace(doc["submissions"]), []byte("null")) {
		return nil, "submissions must be an array of submissions"
	}
	switch {
	case len(raws) == 0:
		return raws, "submissions is empty"
	case len(raws) > limit:
		return raws, "batch has " + strconv.Itoa(len(raws)) + " submissions, at most " + strconv.Itoa(limit)
	}
	return raws, ""
}

func (g *Gateway) decodeBatch(k apikeys.Key, raws []json.RawMessage, results []ItemResult) []*batchItem {
	items := make([]*batchItem, len(raws))
	first := map[string]int{}
	pending := map[string]codecs.Enrolment{}
	for i, raw := range raws {
		results[i].Index = i
		d, status, p := g.decode(k, raw, false, pending)
		s, enrol := d.sub, d.enrol
		if status != 0 {
			results[i].Status, results[i].Error, results[i].Fields = status, p.Error, p.Fields
			continue
		}
		results[i].MessageID = s.MessageID
		it := &batchItem{raw: d.value, fhir: d.fhir, enrol: enrol, subject: s.SubjectID, key: idempotencyKey(k, "", s.StudyID, s.MessageID),
			fp: fingerprint(raw), dupOf: -1}
		if enrol != nil {
			pending[s.SubjectID] = *enrol
		}
		if j, seen := first[it.key]; seen {
			if items[j].fp != it.fp {
				// The same id with another body is a conflict, as for a single POST.
				results[i].Status, results[i].Error = http.StatusUnprocessableEntity,
					"this message_id was already used for a different body (item "+strconv.Itoa(j)+" of this batch)"
				continue
			}
			it.dupOf = j // answered like its first occurrence, sent once
		} else {
			first[it.key] = i
		}
		items[i] = it
	}
	return items
}

// claimBatch claims every item's idempotency key in one round trip and
// fills in the answers of items already done or in progress.
func (g *Gateway) claimBatch(r *http.Request, items []*batchItem, results []ItemResult) {
	if g.deps.Idempotency == nil {
		return
	}
	var idx []int
	var keys, fps []string
	for i, it := range items {
		if it != nil && it.dupOf < 0 {
			idx = append(idx, i)
			keys, fps = append(keys, it.key), append(fps, it.fp)
		}
	}
	if len(idx) == 0 {
		return
	}
	claims, errs, err := g.beginMany(r, keys, fps)
	if err != nil {
		g.metrics.degraded.WithLabelValues("idempotency").Inc()
		g.log.Debug("idempotency unavailable, sending the batch unguarded", "err", err)
		return
	}
	for j, i := range idx {
		it, res := items[i], &results[i]
		switch {
		case errors.Is(errs[j], idempotency.ErrInProgress):
			res.Status, res.Error = http.StatusConflict, "a request with this message_id is in progress"
			items[i] = nil
		case errors.Is(errs[j], idempotency.ErrMismatch):
			res.Status, res.Error = http.StatusUnprocessableEntity, "this message_id was already used for a different submission"
			items[i] = nil
		case claims[j].Replay != nil:
			res.Status, res.Replayed = claims[j].Replay.Status, true
			g.metrics.replayed.Inc()
			items[i] = nil
		default:
			it.claim = claims[j]
		}
	}
}

// beginMany claims keys; items another request is working on are asked
// again for up to a second, so that a batch retried right after its first
// attempt gets the first attempt's answers.
func (g *Gateway) beginMany(r *http.Request, keys, fps []string) ([]idempotency.Claim, []error, error) {
	claims, errs, err := g.deps.Idempotency.BeginMany(r.Context(), keys, fps)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var again []int
		for i, e := range errs {
			if errors.Is(e, idempotency.ErrInProgress) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		select {
		case <-r.Context().Done():
			return claims, errs, nil
		case <-time.After(10 * time.Millisecond):
		}
		k, f := make([]string, len(again)), make([]string, len(again))
		for j, i := range again {
			k[j], f[j] = keys[i], fps[i]
		}
		c2, e2, err2 := g.deps.Idempotency.BeginMany(r.Context(), k, f)
		if err2 != nil {
			break // those items stay 409: retry them
		}
		for j, i := range again {
			claims[i], errs[i] = c2[j], e2[j]
		}
	}
	return claims, errs, nil
}

// produceBatch sends the claimed items and completes or releases their
// claims, each in one round trip.
func (g *Gateway) produceBatch(r *http.Request, items []*batchItem, results []ItemResult) {
	unenrolled := g.enrolBatch(r, items)
	var recs []record
	var idx []int
	var failed []idempotency.Claim
	for i, it := range items {
		if it == nil || it.dupOf >= 0 {
			continue
		}
		if ref, ok := unenrolled[it.subject]; ok {
			results[i].Status, results[i].Error = ref.status, ref.msg
			failed = append(failed, it.claim)
			continue
		}
		recs = append(recs, record{key: it.subject, value: it.raw})
		idx = append(idx, i)
	}
	if len(recs) == 0 {
		if g.deps.Idempotency != nil && len(failed) > 0 {
			_ = g.deps.Idempotency.AbortMany(r.Context(), failed)
		}
		return
	}
	errs := g.produce(r.Context(), recs)
	var done []idempotency.Claim
	var outs []idempotency.Outcome
	for j, i := range idx {
		res := &results[i]
		if errs[j] != nil {
			res.Status, res.Error = http.StatusServiceUnavailable, "Kafka did not acknowledge this submission; retry it with the same message_id"
			failed = append(failed, items[i].claim)
			continue
		}
		res.Status = http.StatusAccepted
		out, _ := json.Marshal(Accepted{MessageID: res.MessageID, Status: "accepted"})
		done, outs = append(done, items[i].claim), append(outs, idempotency.Outcome{Status: http.StatusAccepted, Body: out})
	}
	if g.deps.Idempotency == nil {
		return
	}
	if err := g.deps.Idempotency.CompleteMany(r.Context(), done, outs); err != nil {
		g.metrics.degraded.WithLabelValues("idempotency").Inc()
		g.log.Warn("idempotency outcomes not stored; retries would send again", "err", err)
	}
	if err := g.deps.Idempotency.AbortMany(r.Context(), failed); err != nil {
		g.log.Warn("idempotency claims not released; they expire by themselves", "err", err)
	}
}

// enrolBatch writes the first-report enrolments the items to be sent need,
// once per subject; it returns, per subject whose enrolment was not written,
// the answer its items get instead (they are not sent).
func (g *Gateway) enrolBatch(r *http.Request, items []*batchItem) map[string]refusal {
	var failed map[string]refusal
	written := map[string]bool{}
	for _, it := range items {
		if it == nil || it.dupOf >= 0 || it.enrol == nil || written[it.subject] {
			continue
		}
		written[it.subject] = true
		ref, err := g.enrolFirstReport(r.Context(), *it.enrol)
		if err != nil {
			g.log.Warn("first-report enrolment not written", "subject_id", it.subject, "err", err)
			ref = &refusal{http.StatusServiceUnavailable, "the subject's enrolment was not written (Kafka or the registry lock did not take it); retry this submission with the same message_id"}
		}
		if ref != nil {
			if failed == nil {
				failed = map[string]refusal{}
			}
			failed[it.subject] = *ref
		}
	}
	return failed
}
