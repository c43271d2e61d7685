package codecs

import (
	"encoding/json"
	"errors"
	"fmt"
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
}

type fhirIdentifier struct {
	Value string `json:"value"`
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

// fhirMapper collects the items and every problem of one response.
type fhirMapper struct {
	items []Item
	errs  FieldErrors
}

// FromFHIR maps a FHIR R4 QuestionnaireResponse onto a Submission. It does
// not validate the result; DecodeSubmission does.
func FromFHIR(b []byte) (Submission, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return Submission{}, fmt.Errorf("%w: %s", ErrNotJSON, jsonProblem(err))
	}
	if top == nil {
		return Submission{}, fmt.Errorf("%w: null", ErrNotJSON)
	}
	m := &fhirMapper{}
	var rt string
	if !m.decode("resourceType", top["resourceType"], &rt) {
		return Submission{}, m.errs
	}
	switch rt {
	case "QuestionnaireResponse":
	case "":
		m.add("resourceType", "is required")
		return Submission{}, m.errs
	default:
		m.add("resourceType", "is %s, want QuestionnaireResponse", quoteShort(rt))
		return Submission{}, m.errs
	}
	s := Submission{Source: "fhir", Format: FormatFHIR}
	s.MessageID = m.messageID(top)
	s.SubjectID = m.subjectID(top["subject"])
	s.StudyID, s.SiteID = m.studyAndSite(top["extension"])
	var canonical string
	m.decode("questionnaire", top["questionnaire"], &canonical)
	s.Instrument, s.InstrumentVersion = splitCanonical(canonical)
	m.decode("authored", top["authored"], &s.SubmittedAt)
	if raw, ok := top["status"]; ok {
		// The warehouse wants to tell completed from amended responses; the
		// name is an extension so the envelope re-encodes as a valid native one.
		s.Extra = map[string]json.RawMessage{"x_fhir_status": raw}
	}
	m.walkItems("item", top["item"], 1)
	if len(m.errs) > 0 {
		return Submission{}, m.errs
	}
	s.Items = m.items
	return s, nil
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

// messageID takes identifier.value, falling back to the resource id.
// identifier is one object in R4 but an array in STU3 and in some servers.
func (m *fhirMapper) messageID(top map[string]json.RawMessage) string {
	raw := top["identifier"]
	if isJSONArray(raw) {
		var ids []fhirIdentifier
		m.decode("identifier", raw, &ids)
		for _, id := range ids {
			if id.Value != "" {
				return id.Value
			}
		}
	} else {
		var id fhirIdentifier
		if m.decode("identifier", raw, &id) && id.Value != "" {
			return id.Value
		}
	}
	var id string
	m.decode("id", top["id"], &id)
	return id
}

func (m *fhirMapper) subjectID(raw json.RawMessage) string {
	var ref fhirReference
	if !m.decode("subject", raw, &ref) {
		return ""
	}
	if id := referenceID(ref.Reference); id != "" {
		return id
	}
	return ref.Identifier.Value
}

// referenceID turns "Patient/X", "https://host/fhir/Patient/X" or
// "Patient/X/_history/2" into X; a reference without '/' is the id itself.
func referenceID(ref string) string {
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

// splitCanonical turns "http://host/Questionnaire/PHQ-9|1.0" into
// ("PHQ-9", "1.0").
func splitCanonical(c string) (name, version string) {
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
	v, unit, ok := m.answerValue(path+"."+key, key, ans[key])
	if ok {
		m.items = append(m.items, Item{Code: linkID, Value: v, Unit: unit})
	}
}

// answerValue maps one value[x]; path already names the value field.
func (m *fhirMapper) answerValue(path, key string, raw json.RawMessage) (Value, string, bool) {
	switch key {
	case "valueInteger", "valueDecimal":
		var f *float64
		if !m.decode(path, raw, &f) {
			return Value{}, "", false
		}
		if f == nil {
			m.add(path, "is null")
			return Value{}, "", false
		}
		return Number(*f), "", true
	case "valueBoolean":
		var b *bool
		if !m.decode(path, raw, &b) {
			return Value{}, "", false
		}
		if b == nil {
			m.add(path, "is null")
			return Value{}, "", false
		}
		return Value{Kind: KindBool, Bool: *b}, "", true
	case "valueString":
		var s *string
		if !m.decode(path, raw, &s) {
			return Value{}, "", false
		}
		if s == nil {
			m.add(path, "is null")
			return Value{}, "", false
		}
		return Text(*s), "", true
	case "valueQuantity":
		return m.quantity(path, raw)
	case "valueCoding":
		return m.coding(path, raw)
	default:
		m.add(path, "is not a supported answer type (use valueInteger, valueDecimal, valueQuantity, valueBoolean, valueString or valueCoding)")
		return Value{}, "", false
	}
}

func (m *fhirMapper) quantity(path string, raw json.RawMessage) (Value, string, bool) {
	var q fhirQuantity
	if !m.decode(path, raw, &q) {
		return Value{}, "", false
	}
	switch {
	case q.Value == nil:
		m.add(path, "has no value")
		return Value{}, "", false
	case q.Comparator != "":
		// "<5" is not 5; scoring it as 5 would be wrong.
		m.add(path, "has a comparator, which is not supported")
		return Value{}, "", false
	}
	unit := q.Code // UCUM, the same whatever the device's display language
	if unit == "" {
		unit = q.Unit
	}
	return Number(*q.Value), unit, true
}

// coding scores a coded answer: an ordinalValue or itemWeight extension
// wins, then the LOINC frequency answer list.
func (m *fhirMapper) coding(path string, raw json.RawMessage) (Value, string, bool) {
	var c fhirCoding
	if !m.decode(path, raw, &c) {
		return Value{}, "", false
	}
	for _, e := range c.Extension {
		if (e.URL == fhirOrdinalURL || e.URL == fhirItemWeightURL) && e.ValueDecimal != nil {
			return Number(*e.ValueDecimal), "", true
		}
	}
	if c.System == loincSystem {
		if score, ok := loincFrequencyScores[c.Code]; ok {
			return Number(score), "", true
		}
	}
	m.add(path, "coding has no score (no ordinalValue or itemWeight extension, and not a known LOINC answer)")
	return Value{}, "", false
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
