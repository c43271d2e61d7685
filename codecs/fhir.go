package codecs

import (
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"strings"
	"unicode/utf8"
)

// FHIR URLs and codes FromFHIR understands.
const (
	fhirStudyIDURL     = "https://eprostream.org/fhir/StructureDefinition/study-id"
	fhirSiteIDURL      = "https://eprostream.org/fhir/StructureDefinition/site-id"
	fhirOrdinalURL     = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
	fhirItemWeightURL  = "http://hl7.org/fhir/StructureDefinition/itemWeight"
	loincSystem        = "http://loinc.org"
	fhirMaxDepth       = 8
	fhirMaxErrors      = 50
	fhirMaxQuotedRunes = 40
)

// loincFrequencyScores is the LOINC answer list PHQ-9 and GAD-7 share
// (LL358-3), so responses that carry no ordinalValue still score.
var loincFrequencyScores = map[string]float64{
	"LA6568-5": 0, // Not at all
	"LA6569-3": 1, // Several days
	"LA6570-1": 2, // More than half the days
	"LA6571-9": 3, // Nearly every day
	// GAD-7's second item words its 2 "More days than not".
	"LA18938-3": 2,
}

type fhirIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type fhirReference struct {
	Reference  string         `json:"reference"`
	Identifier fhirIdentifier `json:"identifier"`
}

type fhirExtension struct {
	URL             string          `json:"url"`
	ValueString     *string         `json:"valueString"`
	ValueDecimal    *float64        `json:"valueDecimal"`
	ValueIdentifier *fhirIdentifier `json:"valueIdentifier"`
}

type fhirCoding struct {
	System    string          `json:"system"`
	Code      string          `json:"code"`
	Extension []fhirExtension `json:"extension"`
}

type fhirQuantity struct {
	Value      *float64 `json:"value"`
	Comparator string   `json:"comparator"`
	Unit       string   `json:"unit"`
	Code       string   `json:"code"`
}

// fhirItem leaves its children raw so each level is decoded only once the
// depth limit allows it, and errors can name the exact index.
type fhirItem struct {
	LinkID string            `json:"linkId"`
	Answer []json.RawMessage `json:"answer"`
	Item   json.RawMessage   `json:"item"`
}

// FHIRResponse is a QuestionnaireResponse read structurally: the
// envelope's parts as sent and every answered item with its path. What the
// linkIds and codings mean is the caller's to decide: FromFHIR takes the
// linkIds as item codes (eprostream's own convention); package fhir maps
// them through the Questionnaire the response names.
type FHIRResponse struct {
	ID         string // the resource's logical id
	Identifier string // identifier.value (an object, or the first non-empty one of an array)
	Subject    FHIRSubject
	// StudyID and SiteID are eprostream's own extensions, when sent.
	StudyID, SiteID string
	Questionnaire   string // the canonical as sent, with its |version
	Authored        string
	Status          string
	Answers         []FHIRAnswer
}

// FHIRSubject is subject: the id of its reference (Patient/X, an absolute
// URL, /_history/n stripped) and its identifier.
type FHIRSubject struct {
	ID               string // from reference
	IdentifierSystem string
	IdentifierValue  string
}

// FHIRAnswer is the first answer of one item. Value is set for every
// value[x] but valueCoding, which is left in Coding for the caller to score.
type FHIRAnswer struct {
	LinkID string
	Path   string // e.g. item[0].item[2].answer[0], for error messages
	Value  Value
	Unit   string
	Coding *FHIRCoding
}

// FHIRCoding is a coded answer; Weight is its ordinalValue or itemWeight
// extension, when it carries one.
type FHIRCoding struct {
	System, Code string
	Weight       *float64
}

// Score is the coding's own weight, then the LOINC answer list PHQ-9 and
// GAD-7 share.
func (c FHIRCoding) Score() (float64, bool) {
	if c.Weight != nil {
		return *c.Weight, true
	}
	if c.System == loincSystem {
		score, ok := loincFrequencyScores[c.Code]
		return score, ok
	}
	return 0, false
}

// ReasonUnscoredCoding is the reason an answer's coding has no score.
const ReasonUnscoredCoding = "coding has no score (no ordinalValue or itemWeight extension, and not a known LOINC answer)"

// fhirMapper collects the answers and every problem of one response.
type fhirMapper struct {
	answers []FHIRAnswer
	errs    FieldErrors
}

// FromFHIR maps a FHIR R4 QuestionnaireResponse onto a Submission by
// eprostream's own convention: linkIds are the item codes, study and site
// come from eprostream's extensions. It does not validate the result;
// DecodeSubmission does. Package fhir maps the shapes other systems send.
func FromFHIR(b []byte) (Submission, error) {
	r, err := ReadFHIRResponse(b)
	if err != nil {
		return Submission{}, err
	}
	s := Submission{Source: "fhir", Format: FormatFHIR, MessageID: r.Identifier, SubjectID: r.Subject.ID,
		StudyID: r.StudyID, SiteID: r.SiteID, SubmittedAt: r.Authored}
	if s.MessageID == "" {
		s.MessageID = r.ID
	}
	if s.SubjectID == "" {
		s.SubjectID = r.Subject.IdentifierValue
	}
	s.Instrument, s.InstrumentVersion = SplitCanonical(r.Questionnaire)
	if r.Status != "" {
		s.Extra = FHIRStatusExtra(r.Status)
	}
	var errs FieldErrors
	for _, a := range r.Answers {
		if a.Coding != nil {
			score, ok := a.Coding.Score()
			if !ok {
				errs.add(a.Path+".valueCoding", ReasonUnscoredCoding)
				continue
			}
			a.Value = Number(score)
		}
		s.Items = append(s.Items, Item{Code: a.LinkID, Value: a.Value, Unit: a.Unit})
	}
	if len(errs) > 0 {
		return Submission{}, errs
	}
	return s, nil
}

// FHIRStatusExtension keeps a FHIR resource's status in the envelope, so
// the warehouse can tell completed from amended responses; the name is an
// extension so the envelope re-encodes as a valid native one.
const FHIRStatusExtension = "x_fhir_status"

// FHIRResourceExtension names, in a native envelope, the FHIR resource
// type it was mapped from (package fhir writes it); such a submission's
// format is fhir.
const FHIRResourceExtension = "x_fhir_resource"

// FHIRStatusExtra is the Extra that carries status.
func FHIRStatusExtra(status string) map[string]json.RawMessage {
	raw, _ := json.Marshal(status)
	return map[string]json.RawMessage{FHIRStatusExtension: raw}
}

// ReadFHIRResponse reads a FHIR R4 QuestionnaireResponse's structure: every
// problem of shape (types, nesting, answers) is a field error, at most 50.
func ReadFHIRResponse(b []byte) (FHIRResponse, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return FHIRResponse{}, fmt.Errorf("%w: %s", ErrNotJSON, jsonProblem(err))
	}
	if top == nil {
		return FHIRResponse{}, fmt.Errorf("%w: null", ErrNotJSON)
	}
	m := &fhirMapper{}
	var rt string
	if !m.decode("resourceType", top["resourceType"], &rt) {
		return FHIRResponse{}, m.errs
	}
	switch rt {
	case "QuestionnaireResponse":
	case "":
		m.add("resourceType", "is required")
		return FHIRResponse{}, m.errs
	default:
		m.add("resourceType", "is %s, want QuestionnaireResponse", quoteShort(rt))
		return FHIRResponse{}, m.errs
	}
	var r FHIRResponse
	r.Identifier = m.identifier(top["identifier"])
	m.decode("id", top["id"], &r.ID)
	r.Subject = m.subject(top["subject"])
	r.StudyID, r.SiteID = m.studyAndSite(top["extension"])
	m.decode("questionnaire", top["questionnaire"], &r.Questionnaire)
	m.decode("authored", top["authored"], &r.Authored)
	m.decode("status", top["status"], &r.Status)
	m.walkItems("item", top["item"], 1)
	if len(m.errs) > 0 {
		return FHIRResponse{}, m.errs
	}
	r.Answers = m.answers
	return r, nil
}

// add records a problem, keeping the error bounded on hostile input.
func (m *fhirMapper) add(path, format string, a ...any) {
	switch {
	case len(m.errs) < fhirMaxErrors:
		m.errs.add(path, format, a...)
	case len(m.errs) == fhirMaxErrors:
		m.errs.add("$", "too many problems; only the first %d are listed", fhirMaxErrors)
	}
}

// decode unmarshals an optional field; absent or null leaves v unchanged.
func (m *fhirMapper) decode(path string, raw json.RawMessage, v any) bool {
	if raw == nil {
		return true
	}
	if err := json.Unmarshal(raw, v); err != nil {
		m.add(path, "%s", fhirTypeProblem(err))
		return false
	}
	return true
}

// fhirTypeProblem describes a decoding error relative to the field, without
// quoting the input.
func fhirTypeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Type == nil {
		return "is malformed"
	}
	field := ""
	if te.Field != "" {
		field = te.Field + " "
	}
	// An out-of-range number comes as "number 1e999", quoting an answer.
	if strings.HasPrefix(te.Value, "number ") {
		return field + "is out of range"
	}
	return fmt.Sprintf("%smust be %s, not %s", field, fhirJSONType(te.Type.Kind().String()), te.Value)
}

func fhirJSONType(kind string) string {
	switch kind {
	case "float64":
		return "a number"
	case "bool":
		return "a boolean"
	default:
		return jsonType(kind)
	}
}

// identifier takes identifier.value. identifier is one object in R4 but an
// array in STU3 and in some servers.
func (m *fhirMapper) identifier(raw json.RawMessage) string {
	if isJSONArray(raw) {
		var ids []fhirIdentifier
		m.decode("identifier", raw, &ids)
		for _, id := range ids {
			if id.Value != "" {
				return id.Value
			}
		}
		return ""
	}
	var id fhirIdentifier
	m.decode("identifier", raw, &id)
	return id.Value
}

func (m *fhirMapper) subject(raw json.RawMessage) FHIRSubject {
	var ref fhirReference
	if !m.decode("subject", raw, &ref) {
		return FHIRSubject{}
	}
	return FHIRSubject{ID: ReferenceID(ref.Reference), IdentifierSystem: ref.Identifier.System, IdentifierValue: ref.Identifier.Value}
}

// ReferenceID turns "Patient/X", "https://host/fhir/Patient/X" or
// "Patient/X/_history/2" into X; a reference without '/' is the id itself.
func ReferenceID(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

func (m *fhirMapper) studyAndSite(raw json.RawMessage) (study, site string) {
	var exts []fhirExtension
	if !m.decode("extension", raw, &exts) {
		return "", ""
	}
	for _, e := range exts {
		switch {
		case e.URL == fhirStudyIDURL && study == "":
			study = extensionString(e)
		case e.URL == fhirSiteIDURL && site == "":
			site = extensionString(e)
		}
	}
	return study, site
}

func extensionString(e fhirExtension) string {
	if e.ValueString != nil {
		return *e.ValueString
	}
	if e.ValueIdentifier != nil {
		return e.ValueIdentifier.Value
	}
	return ""
}

// SplitCanonical turns "http://host/Questionnaire/PHQ-9|1.0" into
// ("PHQ-9", "1.0").
func SplitCanonical(c string) (name, version string) {
	url, version, _ := strings.Cut(c, "|")
	url = strings.TrimRight(url, "/")
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		url = url[i+1:]
	}
	return url, version
}

// walkItems maps an item array found at path; depth counts item levels,
// whether nested under a group or under an answer.
func (m *fhirMapper) walkItems(path string, raw json.RawMessage, depth int) {
	if raw == nil || string(raw) == "null" {
		return
	}
	if depth > fhirMaxDepth {
		m.add(path, "items nested deeper than %d levels", fhirMaxDepth)
		return
	}
	var items []fhirItem
	if !m.decode(path, raw, &items) {
		return
	}
	for i, it := range items {
		m.walkItem(fmt.Sprintf("%s[%d]", path, i), it, depth)
	}
}

func (m *fhirMapper) walkItem(path string, it fhirItem, depth int) {
	for j, raw := range it.Answer {
		ap := fmt.Sprintf("%s.answer[%d]", path, j)
		var ans map[string]json.RawMessage
		if !m.decode(ap, raw, &ans) {
			continue
		}
		if j == 0 {
			m.mapAnswer(path, ap, it.LinkID, ans)
		}
		m.walkItems(ap+".item", ans["item"], depth+1)
	}
	m.walkItems(path+".item", it.Item, depth+1)
}

// mapAnswer turns an item's first answer into an Item. An answer with no
// value but nested items is a container and contributes only its children.
func (m *fhirMapper) mapAnswer(itemPath, path, linkID string, ans map[string]json.RawMessage) {
	var key string
	for k := range ans {
		if !strings.HasPrefix(k, "value") {
			continue
		}
		if key != "" {
			m.add(path, "has more than one value[x]")
			return
		}
		key = k
	}
	if key == "" {
		if ans["item"] == nil {
			m.add(path, "has no value")
		}
		return
	}
	if linkID == "" {
		m.add(itemPath+".linkId", "is required")
		return
	}
	a, ok := m.answerValue(path+"."+key, key, ans[key])
	if ok {
		a.LinkID, a.Path = linkID, path
		m.answers = append(m.answers, a)
	}
}

// answerValue reads one value[x]; path already names the value field.
func (m *fhirMapper) answerValue(path, key string, raw json.RawMessage) (FHIRAnswer, bool) {
	switch key {
	case "valueInteger", "valueDecimal":
		var f *float64
		if !m.decode(path, raw, &f) {
			return FHIRAnswer{}, false
		}
		if f == nil {
			m.add(path, "is null")
			return FHIRAnswer{}, false
		}
		return FHIRAnswer{Value: Number(*f)}, true
	case "valueBoolean":
		var b *bool
		if !m.decode(path, raw, &b) {
			return FHIRAnswer{}, false
		}
		if b == nil {
			m.add(path, "is null")
			return FHIRAnswer{}, false
		}
		return FHIRAnswer{Value: Value{Kind: KindBool, Bool: *b}}, true
	case "valueString":
		var s *string
		if !m.decode(path, raw, &s) {
			return FHIRAnswer{}, false
		}
		if s == nil {
			m.add(path, "is null")
			return FHIRAnswer{}, false
		}
		return FHIRAnswer{Value: Text(*s)}, true
	case "valueQuantity":
		v, unit, ok := m.quantity(path, raw)
		return FHIRAnswer{Value: Number(v), Unit: unit}, ok
	case "valueCoding":
		c, ok := m.coding(path, raw)
		return FHIRAnswer{Coding: &c}, ok
	default:
		m.add(path, "is not a supported answer type (use valueInteger, valueDecimal, valueQuantity, valueBoolean, valueString or valueCoding)")
		return FHIRAnswer{}, false
	}
}

// ReadFHIRQuantity reads a Quantity found at path: its value and its unit
// (the UCUM code, else unit).
func ReadFHIRQuantity(path string, raw json.RawMessage) (float64, string, FieldErrors) {
	m := &fhirMapper{}
	v, unit, _ := m.quantity(path, raw)
	return v, unit, m.errs
}

func (m *fhirMapper) quantity(path string, raw json.RawMessage) (float64, string, bool) {
	var q fhirQuantity
	if !m.decode(path, raw, &q) {
		return 0, "", false
	}
	switch {
	case q.Value == nil:
		m.add(path, "has no value")
		return 0, "", false
	case q.Comparator != "":
		// "<5" is not 5; scoring it as 5 would be wrong.
		m.add(path, "has a comparator, which is not supported")
		return 0, "", false
	}
	unit := q.Code // UCUM, the same whatever the device's display language
	if unit == "" {
		unit = q.Unit
	}
	return *q.Value, unit, true
}

// coding reads a coded answer with its ordinalValue or itemWeight
// extension, if any.
func (m *fhirMapper) coding(path string, raw json.RawMessage) (FHIRCoding, bool) {
	var c fhirCoding
	if !m.decode(path, raw, &c) {
		return FHIRCoding{}, false
	}
	out := FHIRCoding{System: c.System, Code: c.Code}
	for _, e := range c.Extension {
		if (e.URL == fhirOrdinalURL || e.URL == fhirItemWeightURL) && e.ValueDecimal != nil {
			w := *e.ValueDecimal
			out.Weight = &w
			break
		}
	}
	return out, true
}

func isJSONArray(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '['
	}
	return false
}

// quoteShort quotes a value for an error message, cut to a few runes so a
// hostile body cannot fill the logs.
func quoteShort(s string) string {
	if utf8.RuneCountInString(s) <= fhirMaxQuotedRunes {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q…", string(r[:fhirMaxQuotedRunes]))
}
