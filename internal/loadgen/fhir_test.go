package loadgen

import (
	"encoding/json"
	"testing"
)

func TestFHIRShape(t *testing.T) {
	cfg := Config{Seed: 5, Studies: 1, SitesPerStudy: 2, SubjectsPerSite: 10, Days: 14, FHIRShare: 1,
		DuplicateRate: -1, MalformedRate: -1}
	recs, _ := drain(t, cfg)
	answers := map[string]int{}
	for i, r := range recs {
		var qr struct {
			ResourceType, ID, Questionnaire, Status, Authored string
			Identifier                                        struct{ Value string }
			Subject                                           struct{ Reference string }
			Extension                                         []struct{ URL, ValueString string }
			Item                                              []struct {
				LinkID string                       `json:"linkId"`
				Answer []map[string]json.RawMessage `json:"answer"`
			}
		}
		if err := json.Unmarshal(r.Value, &qr); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		s := r.Submission
		if qr.ResourceType != "QuestionnaireResponse" || qr.ID != r.MessageID || qr.Identifier.Value != r.MessageID ||
			qr.Questionnaire != "http://eprostream.org/Questionnaire/"+s.Instrument+"|1.0" || qr.Status != "completed" ||
			qr.Subject.Reference != "Patient/"+r.Key || qr.Authored != s.SubmittedAt || s.Source != "fhir" ||
			len(qr.Extension) != 2 || qr.Extension[0].URL != fhirStudyExtension || qr.Extension[0].ValueString != s.StudyID ||
			qr.Extension[1].URL != fhirSiteExtension || qr.Extension[1].ValueString != s.SiteID || len(qr.Item) != len(s.Items) {
			t.Fatalf("record %d is not the QuestionnaireResponse of its envelope:\n%s", i, r.Value)
		}
		for k, it := range qr.Item {
			if it.LinkID != s.Items[k].Code || len(it.Answer) != 1 || len(it.Answer[0]) != 1 {
				t.Fatalf("record %d item %d: %+v", i, k, it)
			}
			for key, raw := range it.Answer[0] {
				answers[key]++
				if key == "valueQuantity" {
					var q struct {
						Value              float64
						Unit, System, Code string
					}
					_ = json.Unmarshal(raw, &q)
					if q.System != ucumSystem || q.Code != s.Items[k].Unit || q.Value != s.Items[k].Value.Num {
						t.Fatalf("record %d item %d: quantity %s", i, k, raw)
					}
				}
			}
		}
	}
	for _, key := range []string{"valueInteger", "valueQuantity", "valueString"} {
		if answers[key] == 0 {
			t.Errorf("no %s answer", key)
		}
	}
}
