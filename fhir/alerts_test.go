package fhir_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// TestPublishedShapesRaiseTheDefaultRulesAlerts runs each published-shape
// resource the way a submission goes: mapped and encoded as the gateway
// writes it to Kafka, cleaned by intake, folded into a new subject's state
// by the subject group with the default rules.
func TestPublishedShapesRaiseTheDefaultRulesAlerts(t *testing.T) {
	cat, err := catalog.Parse([]byte(`
studies:
  - id: ONC-301
    sites: [SITE-001]
questionnaires: [testdata/questionnaire-phq9-mii.json]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	place := func(string, fhir.Placement) fhir.Placement {
		return fhir.Placement{StudyID: "ONC-301", SiteID: "SITE-001"}
	}
	cases := []struct {
		file string
		want []string // rule:severity
	}{
		{"qr-phq9-lhcforms.json", []string{"phq9-self-harm:urgent", "phq9-total:warning"}},
		{"qr-phq9-plain-linkids.json", []string{"phq9-self-harm:urgent", "phq9-total:warning"}},
		{"qr-phq9-mii.json", []string{"phq9-self-harm:urgent"}},
		{"qr-phq9-nested-nocanonical.json", nil},
		{"qr-gad7-lhcforms.json", nil},
		{"qr-vitals-nocanonical.json", []string{"fever:warning"}},
		{"observation-body-temperature-degf.json", []string{"fever:warning"}},
		{"observation-body-temperature.json", nil},
		{"observation-blood-pressure.json", nil},
		{"observation-heart-rate.json", nil},
		{"observation-spo2.json", nil},
		{"observation-body-weight-lb.json", nil},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := cat.FHIR().Map(b, place)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			raw, err := json.Marshal(m.Submission)
			if err != nil {
				t.Fatal(err)
			}
			clean, err := intake.Clean(cat, raw, now)
			if err != nil {
				t.Fatalf("intake refuses the mapped envelope: %v\n%s", err, raw)
			}
			if clean.Format != string(codecs.FormatFHIR) {
				t.Errorf("format %q, want fhir", clean.Format)
			}
			_, alerts, applied := subject.ApplySubmission(codecs.SubjectState{}, clean, rules.Default(), now)
			if !applied {
				t.Fatal("not applied")
			}
			var got []string
			for _, a := range alerts {
				got = append(got, a.RuleID+":"+string(a.Severity))
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("alerts %v, want %v", got, c.want)
			}
		})
	}
}
