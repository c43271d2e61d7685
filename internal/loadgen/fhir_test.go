package loadgen

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eprostream/eprostream/codecs"
)

func TestFHIRShape(t *testing.T) {
	cfg := Config{Seed: 5, Studies: 1, SitesPerStudy: 2, SubjectsPerSite: 10, Days: 14, FHIRShare: 1,
		DuplicateRate: -1, MalformedRate: -1}
	recs, _ := drain(t, cfg)
	answers, forms := map[string]int{}, map[string]int{}
	for i, r := range recs {
		s := r.Submission
		// What is sent is the mapping, as the gateway writes it.
		var sent codecs.Submission
		if err := json.Unmarshal(r.Value, &sent); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if sent.Origin() != codecs.FormatFHIR || sent.MessageID != r.MessageID || sent.StudyID == "" || sent.SiteID == "" ||
			len(sent.Items) != len(s.Items) || sent.Items[0].Code != s.Items[0].Code {
			t.Fatalf("record %d: the sent envelope is not the mapping of its resource:\n%s", i, r.Value)
		}
		if s.Instrument == "VITALS" {
			var obs struct {
				ResourceType, Status string
				Code                 struct {
					Coding []struct{ System, Code string }
				}
				Subject       struct{ Reference string }
				ValueQuantity struct {
					Value        float64
					System, Code string
				}
				Extension []json.RawMessage
			}
			if err := json.Unmarshal(r.FHIR, &obs); err != nil || obs.ResourceType != "Observation" || obs.Status != "final" ||
				len(obs.Code.Coding) != 1 || obs.Code.Coding[0].System != "http://loinc.org" || obs.Subject.Reference != "Patient/"+r.Key ||
				obs.ValueQuantity.System != ucumSystem || obs.ValueQuantity.Code != s.Items[0].Unit || len(obs.Extension) != 0 || len(s.Items) != 1 {
				t.Fatalf("record %d is not a vital-signs Observation of one reading:\n%s", i, r.FHIR)
			}
			forms["VITALS Observation "+obs.Code.Coding[0].Code]++
			answers["valueQuantity"]++
			continue
		}
		var qr struct {
			ResourceType, ID, Questionnaire, Status, Authored string
			Identifier                                        struct{ Value string }
			Subject                                           struct{ Reference string }
			Extension                                         []json.RawMessage
			Item                                              []struct {
				LinkID string                       `json:"linkId"`
				Answer []map[string]json.RawMessage `json:"answer"`
			}
		}
		if err := json.Unmarshal(r.FHIR, &qr); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if qr.ResourceType != "QuestionnaireResponse" || qr.Identifier.Value != r.MessageID || qr.Status != "completed" ||
			qr.Subject.Reference != "Patient/"+r.Key || qr.Authored != s.SubmittedAt || len(qr.Extension) != 0 || len(qr.Item) != len(s.Items) {
			t.Fatalf("record %d is not a QuestionnaireResponse of its report, in the shape apps send:\n%s", i, r.FHIR)
		}
		forms[s.Instrument+" "+qr.Questionnaire]++
		for k, it := range qr.Item {
			switch s.Instrument {
			case "PHQ-9", "NRS-PAIN":
				if !strings.HasPrefix(it.LinkID, "/") || !strings.Contains(it.LinkID, "-") {
					t.Fatalf("record %d item %d: linkId %q is not a LOINC form's", i, k, it.LinkID)
				}
			}
			for key := range it.Answer[0] {
				answers[key]++
			}
		}
	}
	for _, key := range []string{"valueCoding", "valueInteger", "valueQuantity", "valueString"} {
		if answers[key] == 0 {
			t.Errorf("no %s answer", key)
		}
	}
	for _, want := range []string{"PHQ-9 http://loinc.org/q/44249-1", "NRS-PAIN http://loinc.org/q/72514-3",
		"VITALS Observation 8310-5", "VITALS Observation 29463-7",
		"PRO-CTCAE https://eprostream.org/fhir/Questionnaire/PRO-CTCAE"} {
		if forms[want] == 0 {
			t.Errorf("no report as %q (got %v)", want, forms)
		}
	}
}
