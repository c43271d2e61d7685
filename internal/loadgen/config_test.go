package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	want := Config{Studies: 2, SitesPerStudy: 10, SubjectsPerSite: 25, Days: 30, Start: defaultStart(),
		AbnormalShare: 0.05, DuplicateRate: 0.02, MalformedRate: 0.01}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	off := Config{AbnormalShare: -1, DuplicateRate: -1, MalformedRate: -0.5, FHIRShare: -1}
	off.SetDefaults()
	if off.AbnormalShare != 0 || off.DuplicateRate != 0 || off.MalformedRate != 0 || off.FHIRShare != 0 {
		t.Fatalf("negative rates should turn into 0: %+v", off)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"duplicate rate", func(c *Config) { c.DuplicateRate = 1.5 }, "loadgen: DuplicateRate 1.5 is outside [0,1)"},
		{"duplicate rate 1", func(c *Config) { c.DuplicateRate = 1 }, "DuplicateRate 1 is outside [0,1)"},
		{"malformed NaN", func(c *Config) { c.MalformedRate = math.NaN() }, "MalformedRate NaN is outside [0,1)"},
		{"abnormal", func(c *Config) { c.AbnormalShare = 1.2 }, "AbnormalShare 1.2 is outside [0,1]"},
		{"abnormal 1", func(c *Config) { c.AbnormalShare = 1 }, ""},
		{"fhir", func(c *Config) { c.FHIRShare = -0.1 }, "FHIRShare -0.1 is outside [0,1]"},
		{"rates sum", func(c *Config) { c.DuplicateRate, c.MalformedRate = 0.6, 0.5 }, "must stay below 1"},
		{"studies", func(c *Config) { c.Studies = 700 }, "Studies 700 is outside [1,699]"},
		{"sites", func(c *Config) { c.SitesPerStudy = -1 }, "SitesPerStudy -1 is outside [1,999]"},
		{"subjects", func(c *Config) { c.SubjectsPerSite = 10_000 }, "SubjectsPerSite 10000"},
		{"days", func(c *Config) { c.Days = 0 }, "Days 0 is outside"},
		{"start", func(c *Config) { c.Start = defaultStart().Add(time.Hour) }, "Start 2026-11-01T01:00:00Z is not a UTC midnight"},
		{"start in a zone", func(c *Config) { c.Start = defaultStart().In(time.FixedZone("x", 3600)) }, ""},
		{"too many subjects", func(c *Config) { c.Studies, c.SitesPerStudy, c.SubjectsPerSite = 200, 100, 100 }, "2000000 subjects"},
		{"too long", func(c *Config) { c.SubjectsPerSite, c.Days = 9999, 3650 }, "subjects×Days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			// New applies the defaults first: Days 0 means 30 there.
			d := c
			d.SetDefaults()
			if _, nerr := New(c); (nerr == nil) != (d.Validate() == nil) {
				t.Fatalf("New and Validate disagree: %v, %v", nerr, d.Validate())
			}
		})
	}
	err := Config{}.Validate()
	for _, field := range []string{"Studies", "SitesPerStudy", "SubjectsPerSite", "Days", "Start"} {
		if err == nil || !strings.Contains(err.Error(), "loadgen: "+field+" ") {
			t.Errorf("zero Config: error %v does not name %s", err, field)
		}
	}
}

func TestRatesOff(t *testing.T) {
	cfg := Config{Seed: 3, Studies: 1, SitesPerStudy: 2, SubjectsPerSite: 10, Days: 20,
		AbnormalShare: -1, DuplicateRate: -1, MalformedRate: -1}
	recs, _ := drain(t, cfg)
	for i, r := range recs {
		if r.Kind != Valid || r.Abnormal {
			t.Fatalf("record %d: kind %s, abnormal %v, with every rate off", i, r.Kind, r.Abnormal)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Valid: "valid", Duplicate: "duplicate", Malformed: "malformed", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}
