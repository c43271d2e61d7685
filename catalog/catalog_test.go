package catalog_test

import (
	"strings"
	"testing"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
)

const doc = `
studies:
  - id: ONC-301
    sites: [SITE-001]
    instruments: [pro-ctcae, ONC-DIARY]
    enrollment: required
  - id: CAR-200
    sites: [SITE-001]
instruments:
  - code: ONC-DIARY
    items:
      - {code: MOUTH_SORES_TODAY, type: integer, min: 0, max: 1}
      - {code: COMMENT, type: text}
`

func TestStudiesDeclareInstrumentsAndPolicy(t *testing.T) {
	c, err := catalog.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	onc, _ := c.Study("ONC-301")
	car, _ := c.Study("CAR-200")
	if onc.Enrollment != catalog.Required || car.Enrollment != catalog.FirstReport {
		t.Fatalf("policies %q %q, want required and the default first-report", onc.Enrollment, car.Enrollment)
	}
	sub := func(study, instr, code string, v float64) codecs.Submission {
		return codecs.Submission{StudyID: study, SiteID: "SITE-001", Instrument: instr, Items: []codecs.Item{{Code: code, Value: codecs.Number(v)}}}
	}
	cases := []struct {
		s    codecs.Submission
		want string
	}{
		{sub("ONC-301", "PRO-CTCAE", "PAIN_SEVERITY", 3), ""},
		{sub("ONC-301", "ONC-DIARY", "MOUTH_SORES_TODAY", 1), ""},
		{sub("ONC-301", "ONC-DIARY", "MOUTH_SORES_TODAY", 2), "must be a whole number from 0 to 1"},
		{sub("ONC-301", "PHQ-9", "PHQ9_1", 1), `instrument: PHQ-9 is not an instrument of study "ONC-301"`},
		{sub("CAR-200", "PHQ-9", "PHQ9_1", 1), ""}, // no list: every built-in one
		{sub("CAR-200", "ONC-DIARY", "MOUTH_SORES_TODAY", 1), ""},
		{sub("XYZ-1", "PRO-CTCAE", "PAIN_SEVERITY", 1), "study_id: is not a study in the catalogue"},
	}
	for _, tc := range cases {
		errs := c.CheckSubmission(tc.s)
		if tc.want == "" && len(errs) > 0 || tc.want != "" && (len(errs) == 0 || !strings.Contains(errs.Error(), tc.want)) {
			t.Errorf("%s %s %s: %v, want %q", tc.s.StudyID, tc.s.Instrument, tc.s.Items[0].Code, errs, tc.want)
		}
	}
}

func TestCatalogueErrorsAreReportedTogether(t *testing.T) {
	_, err := catalog.Parse([]byte(`
studies:
  - id: ONC-301
    instruments: [EQ-5D-5L]
    enrollment: sometimes
  - id: ONC-301
    sitez: [SITE-001]
`))
	if err == nil {
		t.Fatal("a wrong catalogue loaded")
	}
	if !strings.Contains(err.Error(), "sitez") {
		t.Fatalf("a misspelt key is not named: %v", err)
	}
	_, err = catalog.Parse([]byte(`
studies:
  - id: ONC-301
    instruments: [EQ-5D-5L]
    enrollment: sometimes
  - id: ONC-301
`))
	for _, want := range []string{"EQ-5D-5L is not defined", `"sometimes", want required or first-report`, "listed twice"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
