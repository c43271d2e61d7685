package fhir

import (
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"sort"
	"strings"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/instruments"
)

type concept struct {
	Coding []Coding `json:"coding"`
}

type component struct {
	Code          concept         `json:"code"`
	ValueQuantity json.RawMessage `json:"valueQuantity"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type reference struct {
	Reference  string `json:"reference"`
	Identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// obsReader decodes an Observation's fields one by one, so a wrong type is
// named by its path and never quotes a value.
type obsReader struct {
	top  map[string]json.RawMessage
	errs codecs.FieldErrors
}

func (r *obsReader) field(name string, v any) {
	raw, ok := r.top[name]
	if !ok || string(raw) == "null" {
		return
	}
	if err := json.Unmarshal(raw, v); err != nil {
		r.errs = append(r.errs, codecs.FieldError{Path: TypeObservation + "." + name, Reason: "is malformed (" + typeProblem(err) + ")"})
	}
}

func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Type == nil {
		return "not the FHIR R4 shape"
	}
	if strings.HasPrefix(te.Value, "number ") { // would quote the value
		return "a number is out of range"
	}
	field := ""
	if te.Field != "" {
		field = te.Field + " "
	}
	return field + "must be a JSON " + jsonKind(te.Type.Kind().String()) + ", not " + te.Value
}

func jsonKind(k string) string {
	switch k {
	case "float64", "int", "int64":
		return "number"
	case "struct", "map":
		return "object"
	case "slice":
		return "array"
	case "bool":
		return "boolean"
	}
	return k
}

// observationStatuses: final, amended and corrected readings are taken;
// the rest say why not.
var observationStatuses = map[string]string{
	"final": "", "amended": "", "corrected": "",
	"registered":       "the reading is not yet taken; send it once final",
	"preliminary":      "only final readings are accepted (send the final reading; a preliminary one would be counted as a report)",
	"entered-in-error": "retracting a reading is not supported here: a reading already accepted stays in the record; ask the study's data manager to correct it",
	"cancelled":        "the reading was not taken",
	"unknown":          "the reading's status is unknown",
}

func (mp *Mapper) observation(b []byte, place Placer) (*Mapped, error) {
	const rt = TypeObservation
	r := &obsReader{}
	if err := json.Unmarshal(b, &r.top); err != nil || r.top == nil {
		return nil, fmt.Errorf("%w: the body is not a JSON object", codecs.ErrNotJSON)
	}
	var (
		id, status, effDT, effInstant string
		eff                           period
		code                          concept
		subj                          reference
		comps                         []component
		exts                          []Extension
	)
	r.field("id", &id)
	r.field("status", &status)
	r.field("code", &code)
	r.field("subject", &subj)
	r.field("effectiveDateTime", &effDT)
	r.field("effectiveInstant", &effInstant)
	r.field("effectivePeriod", &eff)
	r.field("component", &comps)
	r.field("extension", &exts)
	identifier := r.identifier()
	for k := range r.top {
		if strings.HasPrefix(k, "value") && k != "valueQuantity" {
			r.errs = append(r.errs, codecs.FieldError{Path: rt + "." + k, Reason: "is not supported; a vital sign is a valueQuantity"})
		}
		if strings.HasPrefix(k, "effective") && k != "effectiveDateTime" && k != "effectiveInstant" && k != "effectivePeriod" {
			r.errs = append(r.errs, codecs.FieldError{Path: rt + "." + k, Reason: "is not supported; use effectiveDateTime or effectivePeriod"})
		}
	}
	if why, known := observationStatuses[status]; status == "" {
		r.errs = append(r.errs, codecs.FieldError{Path: rt + ".status", Reason: "is required (final, amended or corrected)"})
	} else if !known {
		r.errs = append(r.errs, codecs.FieldError{Path: rt + ".status", Reason: fmt.Sprintf("is %s, not an Observation status", codecs.QuoteID(status))})
	} else if why != "" {
		r.errs = append(r.errs, codecs.FieldError{Path: rt + ".status", Reason: "is " + status + ": " + why})
	}
	m := &Mapped{Type: rt}
	s := &m.Submission
	s.Source, s.Format = "fhir", codecs.FormatFHIR
	s.MessageID = firstOf(identifier, id, contentID(b))
	var sysStudy, why string
	s.SubjectID, sysStudy, why = mp.subject(codecs.ReferenceID(subj.Reference), subj.Identifier.System, subj.Identifier.Value)
	claimed := Placement{}
	for _, e := range exts {
		if e.ValueString == nil {
			continue
		}
		switch e.URL {
		case StudyExtension:
			claimed.StudyID = *e.ValueString
		case SiteExtension:
			claimed.SiteID = *e.ValueString
		}
	}
	p := place(s.SubjectID, claimed)
	s.StudyID, s.SiteID = p.StudyID, p.SiteID
	r.errs = append(r.errs, subjectProblems(rt, why, sysStudy, p.StudyID)...)
	when, path := firstOf(effDT, effInstant, eff.Start, eff.End), rt+".effectiveDateTime"
	switch {
	case effInstant != "":
		path = rt + ".effectiveInstant"
	case effDT == "" && eff.Start != "":
		path = rt + ".effectivePeriod.start"
	case effDT == "" && eff.End != "":
		path = rt + ".effectivePeriod.end"
	}
	at, reason := dateTime(when)
	if reason != "" {
		r.errs = append(r.errs, codecs.FieldError{Path: path, Reason: reason})
	}
	s.SubmittedAt = at

	uses := func(instr string) bool { return mp.uses(s.StudyID, instr) }
	var def *instruments.Definition
	add := func(path string, c concept, raw json.RawMessage) {
		d, item, why := mp.measurement(c, uses)
		if item == "" {
			r.errs = append(r.errs, codecs.FieldError{Path: path + ".code", Reason: why})
			return
		}
		if def != nil && d != def {
			r.errs = append(r.errs, codecs.FieldError{Path: path + ".code", Reason: fmt.Sprintf("is an item of %s, not of %s like the rest", d.Code, def.Code)})
			return
		}
		def = d
		v, unit, errs := codecs.ReadFHIRQuantity(path+".valueQuantity", raw)
		if len(errs) > 0 {
			r.errs = append(r.errs, errs...)
			return
		}
		s.Items = append(s.Items, codecs.Item{Code: item, Value: codecs.Number(v), Unit: unit})
		m.items = append(m.items, path+".valueQuantity")
	}
	switch {
	case r.top["valueQuantity"] != nil:
		add(rt, code, r.top["valueQuantity"])
	case len(comps) > 0:
		for i, c := range comps {
			p := fmt.Sprintf("%s.component[%d]", rt, i)
			if c.ValueQuantity == nil {
				r.errs = append(r.errs, codecs.FieldError{Path: p, Reason: "has no valueQuantity"})
				continue
			}
			add(p, c.Code, c.ValueQuantity)
		}
	default:
		r.errs = append(r.errs, codecs.FieldError{Path: rt + ".value", Reason: "is required: a valueQuantity, or components with one (a blood-pressure panel)"})
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	s.Instrument, s.InstrumentVersion = def.Code, def.Version
	s.Extra = extra(rt, status)
	m.ID = logicalID(id, s.MessageID)
	return m, nil
}

// identifier is the first non-empty identifier.value (an array in R4).
func (r *obsReader) identifier() string {
	raw := r.top["identifier"]
	if raw == nil {
		return ""
	}
	var ids []struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(raw, &ids); err != nil {
		var one struct {
			Value string `json:"value"`
		}
		if json.Unmarshal(raw, &one) != nil {
			r.errs = append(r.errs, codecs.FieldError{Path: TypeObservation + ".identifier", Reason: "must be an array of identifiers"})
		}
		return one.Value
	}
	for _, id := range ids {
		if id.Value != "" {
			return id.Value
		}
	}
	return ""
}

// measurement finds the instrument item an Observation's code is, among
// the instruments the study uses.
func (mp *Mapper) measurement(c concept, uses func(string) bool) (*instruments.Definition, string, string) {
	set := mp.Library.Instruments()
	var known []string
	for _, code := range set.Codes() {
		if !uses(code) {
			continue
		}
		d, _ := set.Lookup(code)
		for _, it := range d.Items {
			if it.Type != instruments.Decimal {
				continue
			}
			for _, cd := range c.Coding {
				if hasCoding(it.Codings, cd) {
					return d, it.Code, ""
				}
			}
			for _, ic := range it.Codings {
				known = append(known, ic.Code)
			}
		}
	}
	var sent []string
	for _, cd := range c.Coding {
		sent = append(sent, cd.System+"|"+cd.Code)
	}
	if len(sent) == 0 {
		return nil, "", "has no coding"
	}
	sort.Strings(known)
	return nil, "", fmt.Sprintf("%s is not a measurement the study records (LOINC codes it records: %s)",
		codecs.QuoteID(strings.Join(sent, ", ")), strings.Join(known, ", "))
}
