package loadgen

import (
	"encoding/json"
	"math"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/instruments"
)

// FHIR R4 as patient apps and device hubs send it: QuestionnaireResponses
// of LOINC forms where one exists (linkIds "/44250-9", LOINC answer codes),
// vitals as a transaction Bundle of vital-signs Observations (LOINC codes,
// UCUM quantities), and no eprostream extensions. The generator maps each
// resource through package fhir, as the gateway does, and sends the mapped
// envelope.
const ucumSystem = "http://unitsofmeasure.org"

// loincAnswers are the LOINC answers of PHQ-9's 0..3.
var loincAnswers = [...]string{"LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"}

type fhirResponse struct {
	ResourceType  string         `json:"resourceType"`
	ID            string         `json:"id"`
	Identifier    fhirIdentifier `json:"identifier"`
	Questionnaire string         `json:"questionnaire,omitempty"`
	Status        string         `json:"status"`
	Subject       fhirReference  `json:"subject"`
	Authored      string         `json:"authored"`
	Item          []fhirItem     `json:"item"`
}

type fhirIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type fhirReference struct {
	Reference string `json:"reference"`
}

type fhirItem struct {
	LinkID string       `json:"linkId"`
	Answer []fhirAnswer `json:"answer"`
}

// fhirAnswer holds exactly one value[x].
type fhirAnswer struct {
	ValueInteger  *int64        `json:"valueInteger,omitempty"`
	ValueDecimal  *float64      `json:"valueDecimal,omitempty"`
	ValueBoolean  *bool         `json:"valueBoolean,omitempty"`
	ValueString   *string       `json:"valueString,omitempty"`
	ValueQuantity *fhirQuantity `json:"valueQuantity,omitempty"`
	ValueCoding   *fhirCoding   `json:"valueCoding,omitempty"`
}

type fhirQuantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

type fhirCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// fhirForms knows each built-in item's LOINC code and maps responses.
type fhirForms struct {
	loinc  map[string]string // item code → LOINC
	panel  map[string]string // instrument → LOINC panel
	mapper *fhir.Mapper
}

func newFHIRForms() *fhirForms {
	set := instruments.Builtin()
	lib, err := fhir.NewLibrary(set)
	if err != nil {
		panic(err) // the built-in forms are checked by package fhir's tests
	}
	f := &fhirForms{loinc: map[string]string{}, panel: map[string]string{}, mapper: &fhir.Mapper{Library: lib}}
	for _, code := range set.Codes() {
		d, _ := set.Lookup(code)
		for _, c := range d.Codings {
			if c.System == instruments.LOINC {
				f.panel[d.Code] = c.Code
			}
		}
		for _, it := range d.Items {
			if len(it.Codings) > 0 && it.Codings[0].System == instruments.LOINC {
				f.loinc[it.Code] = it.Codings[0].Code
			}
		}
	}
	return f
}

// response renders a report as a QuestionnaireResponse: PHQ-9 and the
// pain NRS as LOINC forms, VITALS without a questionnaire, the rest by
// eprostream's built-in forms.
func (f *fhirForms) response(sub *codecs.Submission) []byte {
	qr := fhirResponse{ResourceType: "QuestionnaireResponse", ID: sub.MessageID, Status: "completed",
		Identifier: fhirIdentifier{System: "urn:eprostream:loadgen", Value: sub.MessageID},
		Subject:    fhirReference{Reference: "Patient/" + sub.SubjectID}, Authored: sub.SubmittedAt,
		Item: make([]fhirItem, len(sub.Items))}
	panel, loinc := f.panel[sub.Instrument], sub.Instrument != instruments.Vitals && f.panel[sub.Instrument] != ""
	switch {
	case sub.Instrument == instruments.Vitals:
	case loinc:
		qr.Questionnaire = fhir.LOINCBase + panel
	default:
		qr.Questionnaire = fhir.BuiltinBase + sub.Instrument
	}
	for i, it := range sub.Items {
		link := it.Code
		switch code := f.loinc[it.Code]; {
		case sub.Instrument == instruments.Vitals && code != "":
			link = code
		case loinc && code != "":
			link = "/" + code
		}
		qr.Item[i] = fhirItem{LinkID: link, Answer: []fhirAnswer{fhirValue(it, sub.Instrument == instruments.PHQ9)}}
	}
	b, _ := json.Marshal(qr) // cannot fail: finite numbers, valid strings
	return b
}

// mapped is the envelope the gateway would write for resource.
func (f *fhirForms) mapped(resource []byte, sub *codecs.Submission) (codecs.Submission, error) {
	m, err := f.mapper.Map(resource, func(string, fhir.Placement) fhir.Placement {
		return fhir.Placement{StudyID: sub.StudyID, SiteID: sub.SiteID}
	})
	if err != nil {
		return codecs.Submission{}, err
	}
	return m.Submission, nil
}

func fhirValue(it codecs.Item, coded bool) fhirAnswer {
	v := it.Value
	switch {
	case v.Kind == codecs.KindText:
		return fhirAnswer{ValueString: &v.Text}
	case v.Kind == codecs.KindBool:
		return fhirAnswer{ValueBoolean: &v.Bool}
	case it.Unit != "":
		return fhirAnswer{ValueQuantity: &fhirQuantity{Value: v.Num, Unit: it.Unit, System: ucumSystem, Code: it.Unit}}
	case coded && v.Num >= 0 && int(v.Num) < len(loincAnswers) && v.Num == math.Trunc(v.Num):
		return fhirAnswer{ValueCoding: &fhirCoding{System: instruments.LOINC, Code: loincAnswers[int(v.Num)]}}
	case v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53:
		n := int64(v.Num)
		return fhirAnswer{ValueInteger: &n}
	default:
		return fhirAnswer{ValueDecimal: &v.Num}
	}
}

type fhirObservation struct {
	ResourceType      string           `json:"resourceType"`
	ID                string           `json:"id"`
	Identifier        []fhirIdentifier `json:"identifier"`
	Status            string           `json:"status"`
	Category          []fhirConcept    `json:"category"`
	Code              fhirConcept      `json:"code"`
	Subject           fhirReference    `json:"subject"`
	EffectiveDateTime string           `json:"effectiveDateTime"`
	ValueQuantity     fhirQuantity     `json:"valueQuantity"`
}

type fhirConcept struct {
	Coding []fhirCoding `json:"coding"`
}

type fhirBundle struct {
	ResourceType string            `json:"resourceType"`
	Type         string            `json:"type"`
	Entry        []fhirBundleEntry `json:"entry"`
}

type fhirBundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
}

// vitalsBundle renders a vitals report as a device hub sends it: a
// transaction Bundle of one vital-signs Observation per reading, each with
// its own identifier (the report's message_id with -1, -2, …).
func (f *fhirForms) vitalsBundle(sub *codecs.Submission) []byte {
	b := fhirBundle{ResourceType: "Bundle", Type: "transaction"}
	for i, it := range sub.Items {
		id := sub.MessageID + "-" + string(rune('1'+i))
		obs := fhirObservation{ResourceType: "Observation", ID: id, Status: "final",
			Identifier: []fhirIdentifier{{System: "urn:eprostream:loadgen", Value: id}},
			Category: []fhirConcept{{Coding: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/observation-category",
				Code: "vital-signs"}}}},
			Code:    fhirConcept{Coding: []fhirCoding{{System: instruments.LOINC, Code: f.loinc[it.Code]}}},
			Subject: fhirReference{Reference: "Patient/" + sub.SubjectID}, EffectiveDateTime: sub.SubmittedAt,
			ValueQuantity: fhirQuantity{Value: it.Value.Num, Unit: it.Unit, System: ucumSystem, Code: it.Unit}}
		raw, _ := json.Marshal(obs)
		e := fhirBundleEntry{FullURL: "urn:eprostream:loadgen:" + id, Resource: raw}
		e.Request.Method, e.Request.URL = "POST", "Observation"
		b.Entry = append(b.Entry, e)
	}
	out, _ := json.Marshal(b) // cannot fail: finite numbers, valid strings
	return out
}
