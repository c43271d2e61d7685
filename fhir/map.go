package fhir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// Resource types the mapping accepts.
const (
	TypeQuestionnaireResponse = "QuestionnaireResponse"
	TypeObservation           = "Observation"
	TypeBundle                = "Bundle"
)

// ErrUnavailable says the forms studies added cannot be read right now:
// the resource is neither accepted nor refused, it is to be retried.
var ErrUnavailable = errors.New("fhir: the added Questionnaires cannot be read right now")

// Placement is where a subject belongs: its enrolment's study and site.
type Placement struct {
	StudyID, SiteID string
}

// Placer says where a subject belongs, from the study registry: claimed is
// what the resource itself says (eprostream's extensions; usually empty).
// It never fails the mapping: an unplaced subject is refused by the
// envelope check (study_id, site_id required), named as the subject.
type Placer func(subject string, claimed Placement) Placement

// Mapper maps FHIR resources onto submissions. Uses says whether a study
// uses an instrument (the catalogue's Uses).
type Mapper struct {
	Library *Library
	Uses    func(study, instrument string) bool
	// SubjectSystem names the study whose subject ids an identifier system
	// holds (the catalogue's fhir_subject_system); nil: none.
	SubjectSystem func(system string) (study string, ok bool)
}

// subject finds the subject id: the reference's, else an identifier's
// value when its system is unset or one a study names for its subject ids.
// study is that study ("" when the system says none); reason says why
// there is no subject.
func (mp *Mapper) subject(refID, system, value string) (id, study, reason string) {
	switch {
	case refID != "":
		return refID, "", ""
	case value == "":
		return "", "", ""
	case system == "":
		return value, "", ""
	}
	if mp.SubjectSystem != nil {
		if st, ok := mp.SubjectSystem(system); ok {
			return value, st, ""
		}
	}
	return "", "", fmt.Sprintf("identifier system %s is not one a study names for its subject ids (fhir_subject_system in the catalogue); send subject.reference", codecs.QuoteID(system))
}

// Mapped is one resource mapped onto a submission.
type Mapped struct {
	Type string // QuestionnaireResponse or Observation
	// ID is the logical id the answer echoes: the resource's own id when it
	// is a valid FHIR id, else one derived from the message_id.
	ID         string
	Submission codecs.Submission
	items      []string // the expression of each item's answer
}

// Location is where the stored resource is named: Type/id/_history/1.
func (m *Mapped) Location() string { return m.Type + "/" + m.ID + "/_history/1" }

// Expression turns a path of the submission (items[3].value, submitted_at)
// into the FHIRPath of the resource's element it came from.
func (m *Mapped) Expression(path string) string {
	if m == nil {
		return path
	}
	if rest, ok := strings.CutPrefix(path, "items["); ok {
		if end := strings.IndexByte(rest, ']'); end > 0 {
			if i, err := strconv.Atoi(rest[:end]); err == nil && i < len(m.items) {
				return m.items[i]
			}
		}
	}
	switch path {
	case "message_id":
		return m.Type + ".identifier"
	case "subject_id", "study_id", "site_id":
		return m.Type + ".subject"
	case "submitted_at":
		if m.Type == TypeObservation {
			return m.Type + ".effective"
		}
		return m.Type + ".authored"
	case "instrument", "instrument_version":
		if m.Type == TypeObservation {
			return m.Type + ".code"
		}
		return m.Type + ".questionnaire"
	case "items":
		if m.Type == TypeObservation {
			return m.Type + ".value"
		}
		return m.Type + ".item"
	}
	if path == "$" || path == "" {
		return m.Type
	}
	return m.Type + "." + path
}

// ResourceType reads a body's resourceType ("" when it has none).
func ResourceType(b []byte) (string, error) {
	var probe struct {
		ResourceType *string `json:"resourceType"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("%w: the body is not a JSON object", codecs.ErrNotJSON)
	}
	if probe.ResourceType == nil {
		return "", nil
	}
	return *probe.ResourceType, nil
}

// IsFHIR reports whether a JSON body is a FHIR resource (has resourceType).
func IsFHIR(b []byte) bool {
	rt, err := ResourceType(b)
	return err == nil && rt != ""
}

// Map maps a QuestionnaireResponse or an Observation. The error is a
// codecs.FieldErrors whose paths are FHIRPath expressions, or
// codecs.ErrNotJSON / ErrTooLarge.
func (mp *Mapper) Map(b []byte, place Placer) (*Mapped, error) {
	if len(b) > codecs.MaxSubmissionBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", codecs.ErrTooLarge, len(b), codecs.MaxSubmissionBytes)
	}
	rt, err := ResourceType(b)
	if err != nil {
		return nil, err
	}
	switch rt {
	case TypeQuestionnaireResponse:
		return mp.response(b, place)
	case TypeObservation:
		return mp.observation(b, place)
	case "":
		return nil, fieldError("resourceType", "is required")
	default:
		return nil, fieldError("resourceType", fmt.Sprintf("is %s; eprostream accepts QuestionnaireResponse and Observation (and Bundles of them at POST /fhir)", codecs.QuoteID(rt)))
	}
}

func fieldError(path, reason string) codecs.FieldErrors {
	return codecs.FieldErrors{{Path: path, Reason: reason}}
}

// prefixed puts the resource type before every path of a field error.
func prefixed(err error, rt string) error {
	var fe codecs.FieldErrors
	if !errors.As(err, &fe) {
		return err
	}
	out := make(codecs.FieldErrors, len(fe))
	for i, f := range fe {
		out[i] = codecs.FieldError{Path: rt + "." + f.Path, Reason: f.Reason}
		if f.Path == "$" {
			out[i].Path = rt
		}
	}
	return out
}

func (mp *Mapper) response(b []byte, place Placer) (*Mapped, error) {
	const rt = TypeQuestionnaireResponse
	r, err := codecs.ReadFHIRResponse(b)
	if err != nil {
		return nil, prefixed(err, rt)
	}
	var errs codecs.FieldErrors
	switch r.Status {
	case "completed", "amended":
	case "":
		errs = append(errs, codecs.FieldError{Path: rt + ".status", Reason: "is required (completed or amended)"})
	default:
		errs = append(errs, codecs.FieldError{Path: rt + ".status", Reason: fmt.Sprintf(
			"is %s; only completed and amended responses are accepted (send the response once it is completed)", codecs.QuoteID(r.Status))})
	}
	m := &Mapped{Type: rt}
	s := &m.Submission
	s.Source, s.Format = "fhir", codecs.FormatFHIR
	s.MessageID = firstOf(r.Identifier, r.ID, contentID(b))
	var sysStudy, why string
	s.SubjectID, sysStudy, why = mp.subject(r.Subject.ID, r.Subject.IdentifierSystem, r.Subject.IdentifierValue)
	p := place(s.SubjectID, Placement{StudyID: r.StudyID, SiteID: r.SiteID})
	s.StudyID, s.SiteID = p.StudyID, p.SiteID
	errs = append(errs, subjectProblems(rt, why, sysStudy, p.StudyID)...)
	at, reason := dateTime(r.Authored)
	if reason != "" {
		errs = append(errs, codecs.FieldError{Path: rt + ".authored", Reason: reason})
	}
	s.SubmittedAt = at
	var form *Form
	if r.Questionnaire != "" {
		form, err = mp.Library.Resolve(r.Questionnaire, s.StudyID)
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		if err != nil {
			return nil, append(errs, codecs.FieldError{Path: rt + ".questionnaire", Reason: err.Error()})
		}
		_, s.InstrumentVersion, _ = strings.Cut(r.Questionnaire, "|")
	} else {
		ids := make([]string, len(r.Answers))
		for i, a := range r.Answers {
			ids[i] = a.LinkID
		}
		form, err = mp.Library.Match(ids, func(instr string) bool { return mp.uses(s.StudyID, instr) })
		if err != nil {
			return nil, append(errs, codecs.FieldError{Path: rt, Reason: err.Error()})
		}
	}
	s.Instrument = form.Instrument
	if s.InstrumentVersion == "" {
		s.InstrumentVersion = form.Version
	}
	for _, a := range r.Answers {
		path := rt + "." + a.Path
		fi, why := form.item(a.LinkID)
		if fi == nil {
			errs = append(errs, codecs.FieldError{Path: path, Reason: why})
			continue
		}
		v := a.Value
		if a.Coding != nil {
			score, ok := fi.answers[a.Coding.System+"|"+a.Coding.Code]
			if !ok {
				score, ok = a.Coding.Score()
			}
			if !ok {
				errs = append(errs, codecs.FieldError{Path: path + ".valueCoding", Reason: "is not one of the answers of item " +
					codecs.QuoteID(a.LinkID) + " in " + form.Canonical() + ", and " + codecs.ReasonUnscoredCoding})
				continue
			}
			v = codecs.Number(score)
		}
		s.Items = append(s.Items, codecs.Item{Code: fi.code, Value: v, Unit: a.Unit})
		m.items = append(m.items, path)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.Extra = extra(rt, r.Status)
	m.ID = logicalID(r.ID, s.MessageID)
	return m, nil
}

// uses filters by the study's instruments once the subject is placed; an
// unplaced subject is the caller's to refuse.
// subjectProblems is why the subject cannot be mapped: an unknown
// identifier system, or one of a study the subject is not enrolled in.
func subjectProblems(rt, why, sysStudy, placed string) codecs.FieldErrors {
	switch {
	case why != "":
		return codecs.FieldErrors{{Path: rt + ".subject.identifier", Reason: why}}
	case sysStudy != "" && placed != "" && placed != sysStudy:
		return codecs.FieldErrors{{Path: rt + ".subject.identifier", Reason: "names a subject of another study's identifier system"}}
	}
	return nil
}

func (mp *Mapper) uses(study, instrument string) bool {
	return mp.Uses == nil || study == "" || mp.Uses(study, instrument)
}

func extra(rt, status string) map[string]json.RawMessage {
	x := codecs.FHIRStatusExtra(status)
	x[codecs.FHIRResourceExtension], _ = json.Marshal(rt)
	return x
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// contentID is the message_id of a resource that carries neither an
// identifier nor an id: derived from its bytes, so a retry of the same
// resource is recognised as one.
func contentID(b []byte) string {
	sum := sha256.Sum256(bytes.TrimSpace(b))
	return "fhir-" + hex.EncodeToString(sum[:16])
}

// logicalID is the id the answer echoes.
func logicalID(id, messageID string) string {
	if validFHIRID(id) {
		return id
	}
	if validFHIRID(messageID) {
		return messageID
	}
	sum := sha256.Sum256([]byte(messageID))
	return hex.EncodeToString(sum[:16])
}

var fhirDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// dateTime turns a FHIR dateTime into the envelope's RFC 3339 time. A
// full date without a time is that day's midnight, UTC (FHIR gives it no
// zone); a year or a month alone is refused.
func dateTime(v string) (string, string) {
	switch {
	case v == "":
		return "", "is required (when the answers or the reading were taken)"
	case fhirDate.MatchString(v):
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return "", "is not a valid date"
		}
		return v + "T00:00:00Z", ""
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return "", "must be a full date (2026-11-20) or a date-time with its offset (2026-11-20T08:15:00+01:00)"
	}
	return v, ""
}
