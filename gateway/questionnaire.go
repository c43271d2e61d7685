package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/instruments"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
)

// QuestionnaireView is the local copy of epro-questionnaires;
// *keyview.View[codecs.QuestionnaireRecord] is one.
type QuestionnaireView interface {
	Get(key string) (codecs.QuestionnaireRecord, bool, error)
}

// QuestionnaireSender writes epro-questionnaires;
// emitters.QuestionnaireEmitter is one. Emit returns once Kafka acknowledged.
type QuestionnaireSender interface {
	Emit(ctx context.Context, key string, q codecs.QuestionnaireRecord) error
}

// maxCompiled bounds the compiled forms kept in memory.
const maxCompiled = 10_000

// questionnaires resolves the forms studies added, from the local copy of
// epro-questionnaires plus this process's own writes until the copy has
// them; compiled forms are kept per record revision.
type questionnaires struct {
	view     QuestionnaireView
	set      *instruments.Set
	mu       sync.Mutex
	own      map[string]codecs.QuestionnaireRecord
	compiled map[string]compiledForm
}

type compiledForm struct {
	revision int
	form     *fhir.Form
}

// record is key's latest record: the view's, or this process's own write
// when the view has not read it yet.
func (q *questionnaires) record(key string) (codecs.QuestionnaireRecord, bool, error) {
	rec, found, err := q.view.Get(key)
	if err != nil {
		return rec, false, fmt.Errorf("%w: %v", fhir.ErrUnavailable, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if own, ok := q.own[key]; ok {
		if !found || own.Revision > rec.Revision {
			return own, true, nil
		}
		delete(q.own, key)
	}
	return rec, found, nil
}

func (q *questionnaires) remember(key string, rec codecs.QuestionnaireRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.own) > maxCompiled {
		clear(q.own) // the view has long read them
	}
	q.own[key] = rec
}

// Form implements fhir.AddedForms.
func (q *questionnaires) Form(key, study string) (*fhir.Form, bool, error) {
	rec, found, err := q.record(key)
	if err != nil || !found || rec.StudyID != study {
		return nil, false, err
	}
	q.mu.Lock()
	c, ok := q.compiled[key]
	q.mu.Unlock()
	if ok && c.revision == rec.Revision {
		return c.form, true, nil
	}
	var qr fhir.Questionnaire
	if err := json.Unmarshal(rec.Resource, &qr); err != nil {
		return nil, false, fmt.Errorf("%w: the stored questionnaire %s is unreadable", fhir.ErrUnavailable, rec.ID)
	}
	form, _, err := fhir.Compile(qr, q.set)
	if err != nil { // compiled when it was put; only a changed instrument set refuses it now
		return nil, false, fmt.Errorf("questionnaire %s no longer maps onto its instrument: %v", rec.ID, err)
	}
	q.mu.Lock()
	if len(q.compiled) > maxCompiled {
		clear(q.compiled)
	}
	q.compiled[key] = compiledForm{revision: rec.Revision, form: form}
	q.mu.Unlock()
	return form, true, nil
}

func (g *Gateway) lockQuestionnaire(id string) string {
	return "questionnaire:" + g.cfg.TopicPrefix + id
}

// putQuestionnaire is PUT /fhir/Questionnaire/{id}: a study adds (or
// replaces) a Questionnaire its responses are mapped through. It must map
// onto an instrument the study uses; items the instrument lacks are
// listed as warnings, and a response answering one is refused.
func (g *Gateway) putQuestionnaire(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	if g.added == nil {
		fail(w, http.StatusNotImplemented, "this gateway keeps no Questionnaires of its own")
		return
	}
	if !contentTypeOK(w, r, true) {
		return
	}
	body, ok := readBody(w, r, int64(g.cfg.MaxBodyBytes))
	if !ok {
		return
	}
	id := r.PathValue("id")
	var q fhir.Questionnaire
	if err := json.Unmarshal(body, &q); err != nil {
		fail(w, http.StatusBadRequest, "the body is not a FHIR JSON Questionnaire")
		return
	}
	switch {
	case q.ResourceType != "Questionnaire":
		fail(w, http.StatusBadRequest, "resourceType must be Questionnaire")
		return
	case q.ID != id:
		fail(w, http.StatusBadRequest, "the id in the body ("+codecs.QuoteID(q.ID)+") must be the id in the URL ("+codecs.QuoteID(id)+")")
		return
	case q.URL == "":
		fail(w, http.StatusBadRequest, "url is required: responses name their Questionnaire by it")
		return
	}
	study := r.URL.Query().Get("study")
	if study == "" {
		if len(k.Studies) != 1 || k.Studies[0] == "*" {
			fail(w, http.StatusBadRequest, "name the study that owns the Questionnaire: ?study=<id>")
			return
		}
		study = k.Studies[0]
	}
	if msg := httpauth.ScopeProblem(k, study); msg != "" {
		fail(w, http.StatusForbidden, msg)
		return
	}
	cat := g.cfg.Catalogue
	if _, known := cat.Study(study); !known {
		fail(w, http.StatusUnprocessableEntity, "study "+codecs.QuoteID(study)+" is not in the catalogue")
		return
	}
	form, warnings, err := fhir.Compile(q, cat.Instruments())
	if err != nil {
		var fields []FieldProblem
		for _, line := range strings.Split(err.Error(), "\n") {
			fields = append(fields, FieldProblem{Path: "Questionnaire", Reason: line})
		}
		writeJSON(w, http.StatusBadRequest, Problem{Error: "the Questionnaire does not map onto an instrument", Fields: fields})
		return
	}
	if !cat.Uses(study, form.Instrument) {
		fail(w, http.StatusUnprocessableEntity, form.Instrument+" is not an instrument of study "+codecs.QuoteID(study))
		return
	}
	if cat.FHIR().Library.Taken(q.URL, q.ID) {
		fail(w, http.StatusConflict, "the url or id is that of a built-in or catalogue Questionnaire; give yours another")
		return
	}
	status, rev, ref := g.storeQuestionnaire(r.Context(), k.ID, study, q, body)
	if ref != nil {
		g.refuse(w, ref)
		return
	}
	loc := "Questionnaire/" + id + "/_history/" + strconv.Itoa(rev)
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", `W/"`+strconv.Itoa(rev)+`"`)
	if len(warnings) > 0 {
		writeFHIR(w, status, fhir.Information("stored as "+loc+", mapped onto "+form.Instrument, warnings))
		return
	}
	writeFHIR(w, status, json.RawMessage(body))
}

// storeQuestionnaire writes q under its url and id, under the id's lock: a
// Questionnaire id and url belong to the study that first put them, and a
// url never changes. The record written is kept beside the lock, so the
// next writer (on any gateway) decides on it, not on a copy that has not
// read it yet.
func (g *Gateway) storeQuestionnaire(ctx context.Context, by, study string, q fhir.Questionnaire, body []byte) (int, int, *refusal) {
	lock, err := g.deps.Locks.Obtain(ctx, g.lockQuestionnaire(q.ID), g.cfg.LockTTL)
	if errors.Is(err, fencedlock.ErrHeld) {
		return 0, 0, &refusal{http.StatusConflict, "Questionnaire " + codecs.QuoteID(q.ID) + " is being written by another request; retry"}
	}
	if err != nil {
		return 0, 0, &refusal{http.StatusServiceUnavailable, "the Questionnaire lock cannot be taken right now; retry"}
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	cur, found, err := g.added.record("id:" + q.ID)
	if err == nil {
		var raw []byte
		var recorded bool
		if raw, recorded, err = g.deps.Locks.Load(ctx, g.lockQuestionnaire(q.ID)); err == nil && recorded {
			var rec codecs.QuestionnaireRecord
			if json.Unmarshal(raw, &rec) == nil && (!found || rec.Revision > cur.Revision) {
				cur, found = rec, true
			}
		}
	}
	if err != nil {
		return 0, 0, &refusal{http.StatusServiceUnavailable, "the stored Questionnaires cannot be read right now; retry"}
	}
	byURL, urlTaken, err := g.added.record("url:" + q.URL)
	if err != nil {
		return 0, 0, &refusal{http.StatusServiceUnavailable, "the stored Questionnaires cannot be read right now; retry"}
	}
	switch {
	case found && cur.StudyID != study:
		return 0, 0, &refusal{http.StatusConflict, "Questionnaire " + codecs.QuoteID(q.ID) + " belongs to another study; choose another id"}
	case found && cur.URL != q.URL:
		return 0, 0, &refusal{http.StatusConflict, "Questionnaire " + codecs.QuoteID(q.ID) + " has url " + codecs.QuoteID(cur.URL) +
			"; a url never changes, so put the new one under a new id"}
	case urlTaken && byURL.ID != q.ID:
		return 0, 0, &refusal{http.StatusConflict, "url " + codecs.QuoteID(q.URL) + " is already the url of another Questionnaire"}
	}
	compact, _ := json.Marshal(json.RawMessage(body))
	rec := codecs.QuestionnaireRecord{V: codecs.WireVersion, StudyID: study, ID: q.ID, URL: q.URL, Resource: compact,
		Revision: cur.Revision + 1, By: by, At: g.now().UTC()}
	for _, key := range []string{"url:" + q.URL, "id:" + q.ID} {
		if err := g.deps.QuestionnaireSender.Emit(ctx, key, rec); err != nil {
			g.log.Warn("questionnaire not written", "id", q.ID, "err", err)
			return 0, 0, &refusal{http.StatusServiceUnavailable, "Kafka did not acknowledge the Questionnaire; retry the same request"}
		}
		g.added.remember(key, rec)
	}
	if enc, err := json.Marshal(rec); err == nil {
		if err := lock.Store(ctx, enc); err != nil {
			g.log.Warn("questionnaire written but not recorded beside its lock", "id", q.ID, "err", err)
		}
	}
	g.log.Info("questionnaire stored", "id", q.ID, "study_id", study, "revision", rec.Revision, "by", by)
	if found {
		return http.StatusOK, rec.Revision, nil
	}
	return http.StatusCreated, rec.Revision, nil
}

// getQuestionnaire is GET /fhir/Questionnaire/{id}: a Questionnaire a
// study of the key put, as put.
func (g *Gateway) getQuestionnaire(w http.ResponseWriter, r *http.Request) {
	k := httpauth.KeyOf(r)
	id := r.PathValue("id")
	if g.added == nil {
		fail(w, http.StatusNotFound, "no Questionnaire "+codecs.QuoteID(id))
		return
	}
	rec, found, err := g.added.record("id:" + id)
	switch {
	case err != nil:
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, "the stored Questionnaires cannot be read right now; retry")
	case !found || !k.MayActFor(rec.StudyID):
		fail(w, http.StatusNotFound, "no Questionnaire "+codecs.QuoteID(id)+" of a study of this API key")
	default:
		w.Header().Set("ETag", `W/"`+strconv.Itoa(rec.Revision)+`"`)
		writeFHIR(w, http.StatusOK, rec.Resource)
	}
}
