package loadgen

import (
	"encoding/json"
	"math"

	"github.com/eprostream/eprostream/codecs"
)

// FHIR R4 QuestionnaireResponse, as much of it as a report needs.
const (
	fhirQuestionnaireBase = "http://eprostream.org/Questionnaire/"
	fhirStudyExtension    = "https://eprostream.org/fhir/StructureDefinition/study-id"
	fhirSiteExtension     = "https://eprostream.org/fhir/StructureDefinition/site-id"
	ucumSystem            = "http://unitsofmeasure.org"
)

type fhirResponse struct {
	ResourceType  string          `json:"resourceType"`
	ID            string          `json:"id"`
	Identifier    fhirIdentifier  `json:"identifier"`
	Questionnaire string          `json:"questionnaire"`
	Status        string          `json:"status"`
	Subject       fhirReference   `json:"subject"`
	Authored      string          `json:"authored"`
	Extension     []fhirExtension `json:"extension"`
	Item          []fhirItem      `json:"item"`
}

type fhirIdentifier struct {
	Value string `json:"value"`
}

type fhirReference struct {
	Reference string `json:"reference"`
}

type fhirExtension struct {
	URL         string `json:"url"`
	ValueString string `json:"valueString"`
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
}

// fhirQuantity carries the UCUM code both as code and as unit, so a reader
// that takes either gets the native envelope's unit.
type fhirQuantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

// marshalFHIR renders an envelope as a QuestionnaireResponse.
func marshalFHIR(sub *codecs.Submission) []byte {
	qr := fhirResponse{
		ResourceType:  "QuestionnaireResponse",
		ID:            sub.MessageID,
		Identifier:    fhirIdentifier{Value: sub.MessageID},
		Questionnaire: fhirQuestionnaireBase + sub.Instrument + "|" + sub.InstrumentVersion,
		Status:        "completed",
		Subject:       fhirReference{Reference: "Patient/" + sub.SubjectID},
		Authored:      sub.SubmittedAt,
		Extension: []fhirExtension{
			{URL: fhirStudyExtension, ValueString: sub.StudyID},
			{URL: fhirSiteExtension, ValueString: sub.SiteID},
		},
		Item: make([]fhirItem, len(sub.Items)),
	}
	for i, it := range sub.Items {
		qr.Item[i] = fhirItem{LinkID: it.Code, Answer: []fhirAnswer{fhirValue(it)}}
	}
	b, _ := json.Marshal(qr) // cannot fail: finite numbers, valid strings
	return b
}

func fhirValue(it codecs.Item) fhirAnswer {
	v := it.Value
	switch {
	case v.Kind == codecs.KindText:
		return fhirAnswer{ValueString: &v.Text}
	case v.Kind == codecs.KindBool:
		return fhirAnswer{ValueBoolean: &v.Bool}
	case it.Unit != "":
		return fhirAnswer{ValueQuantity: &fhirQuantity{Value: v.Num, Unit: it.Unit, System: ucumSystem, Code: it.Unit}}
	case v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53:
		n := int64(v.Num)
		return fhirAnswer{ValueInteger: &n}
	default:
		return fhirAnswer{ValueDecimal: &v.Num}
	}
}
