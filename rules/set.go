// Package rules evaluates clinical rule sets against a subject's state.
// A rule set is data: versioned YAML per study (default.yaml is the set of
// docs/architecture.md). Evaluation is pure: state and a clean submission in, the new
// state and alerts out, so it is table-tested without Kafka.
package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eprostream/eprostream/codecs"
)

// Rule kinds.
const (
	KindThreshold    = "threshold"     // a value at or above a level
	KindBaselineRise = "baseline_rise" // a value rise points above the mean of the first reports
	KindStreak       = "streak"        // at_least on `reports` consecutive reports
	KindRiseWithin   = "rise_within"   // a value rise above the lowest within a window
	KindMissed       = "missed"        // no report for longer than after (time-driven)
)

// Set is one study's versioned rule set.
type Set struct {
	Study   string `yaml:"study"`
	Version int    `yaml:"version"`
	Rules   []Rule `yaml:"rules"`
}

// Rule is one clinical rule. Which fields apply depends on Kind.
type Rule struct {
	ID              string        `yaml:"id"`
	Kind            string        `yaml:"kind"`
	Instrument      string        `yaml:"instrument"`
	Items           []string      `yaml:"items"`
	ItemSuffixes    []string      `yaml:"item_suffixes"`
	Unit            string        `yaml:"unit"`
	Levels          []Level       `yaml:"levels"`
	Severity        string        `yaml:"severity"`
	AtLeast         float64       `yaml:"at_least"`
	Reports         int           `yaml:"reports"`
	Rise            float64       `yaml:"rise"`
	BaselineReports int           `yaml:"baseline_reports"`
	Within          time.Duration `yaml:"within"`
	After           time.Duration `yaml:"after"`
	EscalateAfter   time.Duration `yaml:"escalate_after"`
	EscalateSev     string        `yaml:"escalate_severity"`
}

// Level of a threshold rule: AtLeast (>=) or Above (>), with its severity.
type Level struct {
	AtLeast  *float64 `yaml:"at_least"`
	Above    *float64 `yaml:"above"`
	Severity string   `yaml:"severity"`
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the default rule set.
func Default() *Set {
	s, err := Parse(defaultYAML)
	if err != nil {
		panic("rules: embedded default.yaml is invalid: " + err.Error()) // caught by tests
	}
	return s
}

// Parse decodes and validates a YAML rule set; unknown fields are errors.
func Parse(b []byte) (*Set, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Set
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate reports every problem of the set, each naming the rule.
func (s *Set) Validate() error {
	var errs []error
	bad := func(r int, format string, a ...any) {
		id := ""
		if r >= 0 {
			id = fmt.Sprintf(" rule %d (%s):", r, s.Rules[r].ID)
		}
		errs = append(errs, fmt.Errorf("rules: study %q%s %s", s.Study, id, fmt.Sprintf(format, a...)))
	}
	if s.Study == "" {
		bad(-1, "study is required")
	}
	if s.Version < 1 {
		bad(-1, "version must be 1 or more")
	}
	seen := map[string]bool{}
	for i, r := range s.Rules {
		if r.ID == "" || seen[r.ID] {
			bad(i, "id is missing or repeated")
		}
		seen[r.ID] = true
		for _, msg := range r.problems() {
			bad(i, "%s", msg)
		}
	}
	return errors.Join(errs...)
}

func (r Rule) problems() []string {
	var out []string
	sev := func(name, s string) {
		if codecs.SeverityRank(s) == 0 {
			out = append(out, fmt.Sprintf("%s %q is not info, warning or urgent", name, s))
		}
	}
	needItems := func() {
		if len(r.Items) == 0 && len(r.ItemSuffixes) == 0 {
			out = append(out, "items or item_suffixes is required")
		}
	}
	switch r.Kind {
	case KindThreshold:
		needItems()
		if len(r.Levels) == 0 {
			out = append(out, "levels is required")
		}
		for _, l := range r.Levels {
			if (l.AtLeast == nil) == (l.Above == nil) {
				out = append(out, "each level needs exactly one of at_least, above")
			}
			sev("level severity", l.Severity)
		}
	case KindBaselineRise:
		needItems()
		sev("severity", r.Severity)
		if r.BaselineReports < 1 || r.Rise <= 0 {
			out = append(out, "baseline_reports >= 1 and rise > 0 are required")
		}
	case KindStreak:
		needItems()
		sev("severity", r.Severity)
		if r.Reports < 1 {
			out = append(out, "reports >= 1 is required")
		}
	case KindRiseWithin:
		needItems()
		sev("severity", r.Severity)
		if r.Rise <= 0 || r.Within <= 0 {
			out = append(out, "rise > 0 and within > 0 are required")
		}
	case KindMissed:
		sev("severity", r.Severity)
		if r.After <= 0 {
			out = append(out, "after > 0 is required")
		}
		if r.EscalateAfter > 0 {
			sev("escalate_severity", r.EscalateSev)
		}
	default:
		out = append(out, fmt.Sprintf("kind %q is not one of threshold, baseline_rise, streak, rise_within, missed", r.Kind))
	}
	return out
}

// matches reports whether the rule reads item code of a report of instrument.
func (r Rule) matches(instrument, code string) bool {
	if r.Instrument != "" && r.Instrument != instrument {
		return false
	}
	if slices.Contains(r.Items, code) {
		return true
	}
	for _, s := range r.ItemSuffixes {
		if strings.HasSuffix(code, s) {
			return true
		}
	}
	return false
}

// Registry holds each study's rule set and the default for the others.
type Registry struct {
	byStudy map[string]*Set
	def     *Set
}

// NewRegistry returns a registry of sets; sets for study "default" replace the default.
func NewRegistry(sets ...*Set) *Registry {
	r := &Registry{byStudy: map[string]*Set{}, def: Default()}
	for _, s := range sets {
		if s.Study == "default" {
			r.def = s
			continue
		}
		r.byStudy[s.Study] = s
	}
	return r
}

// LoadDir reads every *.yaml file of dir as a rule set.
func LoadDir(dir string) (*Registry, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var sets []*Set
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		s, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		sets = append(sets, s)
	}
	return NewRegistry(sets...), nil
}

// For returns the set of study.
func (r *Registry) For(study string) *Set {
	if s, ok := r.byStudy[study]; ok {
		return s
	}
	return r.def
}

// SilenceLimit is how long a subject may go without reporting before a
// time-driven rule of the set can fire (0 when the set has none).
func (s *Set) SilenceLimit() time.Duration {
	var limit time.Duration
	for _, r := range s.Rules {
		if r.Kind == KindMissed && (limit == 0 || r.After < limit) {
			limit = r.After
		}
	}
	return limit
}

// Sets returns the default set and every study's, the default first.
func (r *Registry) Sets() []*Set {
	out := []*Set{r.def}
	studies := make([]string, 0, len(r.byStudy))
	for s := range r.byStudy {
		studies = append(studies, s)
	}
	slices.Sort(studies)
	for _, s := range studies {
		out = append(out, r.byStudy[s])
	}
	return out
}

// Line is a value a rule alerts at or above, drawn on an item's chart.
type Line struct {
	RuleID   string  `json:"rule_id"`
	Kind     string  `json:"kind"`
	Severity string  `json:"severity"`
	Value    float64 `json:"value"`
	// Above is true when the rule fires only above Value, not at it.
	Above bool   `json:"above,omitempty"`
	Unit  string `json:"unit,omitempty"`
}

// Lines are the set's fixed alert levels for item code with history h
// (nil: none yet): threshold levels, streak levels and, once h holds the
// rule's baseline reports, baseline + rise. Rules that alert on a change within a window or on
// silence have no fixed level. An item's instrument is not kept with its
// history, so a rule limited to an instrument is drawn on every item of
// that code.
func (s *Set) Lines(code string, h *codecs.ItemHistory) []Line {
	var out []Line
	for _, r := range s.Rules {
		if !r.matches(r.Instrument, code) {
			continue
		}
		switch r.Kind {
		case KindThreshold:
			for _, l := range r.Levels {
				out = append(out, Line{RuleID: r.ID, Kind: r.Kind, Severity: l.Severity, Value: l.threshold(), Above: l.Above != nil, Unit: r.Unit})
			}
		case KindStreak:
			out = append(out, Line{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, Value: r.AtLeast, Unit: r.Unit})
		case KindBaselineRise:
			if h != nil && h.BaseN > 0 && h.BaseN >= r.BaselineReports {
				base := h.BaseSum / float64(h.BaseN)
				out = append(out, Line{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, Value: base + r.Rise, Unit: r.Unit})
			}
		}
	}
	return out
}
