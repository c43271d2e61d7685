package instruments

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/eprostream/eprostream/codecs"
)

// ItemType is how an item is answered.
type ItemType string

// The item types.
const (
	Integer ItemType = "integer" // whole numbers in [Min, Max]; true/false count as 1/0
	Decimal ItemType = "decimal" // numbers in [Min, Max], in Unit
	Text    ItemType = "text"    // free text (PHI: kept, never logged)
)

// Coding names an item or an instrument in another code system, such as
// LOINC: what a FHIR resource's codes are matched against.
type Coding struct {
	System string `yaml:"system" json:"system"`
	Code   string `yaml:"code" json:"code"`
}

// Item is one question of an instrument.
type Item struct {
	Code     string   `yaml:"code" json:"code"`
	Text     string   `yaml:"text,omitempty" json:"text,omitempty"`
	Type     ItemType `yaml:"type" json:"type"`
	Min      float64  `yaml:"min" json:"min"`
	Max      float64  `yaml:"max" json:"max"`
	Unit     string   `yaml:"unit,omitempty" json:"unit,omitempty"` // canonical UCUM unit of a decimal item
	Codings  []Coding `yaml:"codings,omitempty" json:"codings,omitempty"`
	LinkIDs  []string `yaml:"link_ids,omitempty" json:"link_ids,omitempty"` // FHIR Questionnaire linkIds that map here
	Severity bool     `yaml:"graded,omitempty" json:"graded,omitempty"`     // a severity or interference grade
}

// Score is a sum of items, computed when every one of them is answered.
type Score struct {
	Code string   `yaml:"code" json:"code"`
	Sum  []string `yaml:"sum" json:"sum"`
}

// Definition is one instrument: its code, version and items.
type Definition struct {
	Code    string   `yaml:"code" json:"code"`
	Version string   `yaml:"version,omitempty" json:"version,omitempty"`
	Name    string   `yaml:"name,omitempty" json:"name,omitempty"`
	Codings []Coding `yaml:"codings,omitempty" json:"codings,omitempty"` // e.g. the LOINC panel
	Items   []Item   `yaml:"items" json:"items"`
	Scores  []Score  `yaml:"scores,omitempty" json:"scores,omitempty"`

	byCode map[string]*Item
}

// Range is the closed interval of valid values of an item.
type Range struct {
	Min, Max float64
	Integer  bool
}

// Contains reports whether v is a valid value.
func (r Range) Contains(v float64) bool {
	if v < r.Min || v > r.Max {
		return false
	}
	return !r.Integer || v == math.Trunc(v)
}

func (r Range) String() string {
	if r.Integer {
		return fmt.Sprintf("a whole number from %g to %g", r.Min, r.Max)
	}
	return fmt.Sprintf("a number from %g to %g", r.Min, r.Max)
}

// Range is the item's valid values (after unit conversion).
func (it *Item) Range() Range { return Range{Min: it.Min, Max: it.Max, Integer: it.Type == Integer} }

// prepare checks d and indexes its items.
func (d *Definition) prepare() error {
	var errs []error
	d.Code = strings.ToUpper(strings.TrimSpace(d.Code))
	if err := codecs.CheckID(d.Code); err != nil {
		errs = append(errs, fmt.Errorf("instrument code %q: %w", d.Code, err))
	}
	if len(d.Items) == 0 {
		errs = append(errs, fmt.Errorf("instrument %s: no items", d.Code))
	}
	d.byCode = make(map[string]*Item, len(d.Items))
	for i := range d.Items {
		it := &d.Items[i]
		it.Code = strings.ToUpper(strings.TrimSpace(it.Code))
		switch {
		case it.Code == "":
			errs = append(errs, fmt.Errorf("instrument %s: items[%d]: code is required", d.Code, i))
		case d.byCode[it.Code] != nil:
			errs = append(errs, fmt.Errorf("instrument %s: item %s is listed twice", d.Code, it.Code))
		}
		switch it.Type {
		case Integer, Decimal:
			if it.Min > it.Max {
				errs = append(errs, fmt.Errorf("instrument %s: item %s: min %g is above max %g", d.Code, it.Code, it.Min, it.Max))
			}
		case Text:
		default:
			errs = append(errs, fmt.Errorf("instrument %s: item %s: type %q, want integer, decimal or text", d.Code, it.Code, it.Type))
		}
		if it.Unit != "" && it.Type != Decimal {
			errs = append(errs, fmt.Errorf("instrument %s: item %s: only decimal items have a unit", d.Code, it.Code))
		}
		d.byCode[it.Code] = it
	}
	for _, sc := range d.Scores {
		for _, c := range sc.Sum {
			if it := d.byCode[strings.ToUpper(c)]; it == nil || it.Type == Text {
				errs = append(errs, fmt.Errorf("instrument %s: score %s sums %s, which is not a numeric item", d.Code, sc.Code, c))
			}
		}
	}
	return errors.Join(errs...)
}

// Item returns the item with code (any letter case).
func (d *Definition) Item(code string) (*Item, bool) {
	if it, ok := d.byCode[code]; ok { // the usual case: sent in upper case
		return it, true
	}
	it, ok := d.byCode[strings.ToUpper(code)]
	return it, ok
}

// ItemCodes lists the item codes in definition order.
func (d *Definition) ItemCodes() []string {
	out := make([]string, len(d.Items))
	for i, it := range d.Items {
		out[i] = it.Code
	}
	return out
}

// Normalise checks one answer against its item and returns it in canonical
// form: the code in upper case, the value in the item's unit and inside its
// range. The gateway and intake both call it (through Check and Clean), so
// a submission the gateway accepts is one intake accepts.
func (d *Definition) Normalise(it codecs.Item) (codecs.CleanItem, error) {
	def, ok := d.Item(it.Code)
	if !ok {
		return codecs.CleanItem{}, errUnknownItem
	}
	ci := codecs.CleanItem{Code: def.Code, Unit: it.Unit}
	var v float64
	switch it.Value.Kind {
	case codecs.KindText:
		if def.Type != Text {
			return ci, fmt.Errorf("%s must be %s, not text", def.Code, def.Range())
		}
		ci.Text = it.Value.Text
		return ci, nil
	case codecs.KindBool:
		if def.Type != Integer || def.Min > 0 || def.Max < 1 {
			return ci, fmt.Errorf("%s must be %s, not true or false", def.Code, def.Range())
		}
		if it.Value.Bool {
			v = 1
		}
	default:
		if def.Type == Text {
			return ci, fmt.Errorf("%s must be text", def.Code)
		}
		v = it.Value.Num
	}
	conv, unit, err := convert(def.Unit, v, it.Unit)
	if err != nil {
		return ci, fmt.Errorf("%s: %v", def.Code, err)
	}
	if r := def.Range(); !r.Contains(conv) {
		// The value itself is an answer: say what is allowed, not what was sent.
		return ci, fmt.Errorf("%s must be %s", def.Code, r)
	}
	ci.Num, ci.Unit = &conv, unit
	return ci, nil
}

var errUnknownItem = errors.New("unknown item")

// Scores computes the definition's scores from one report's values.
func (d *Definition) ComputeScores(values map[string]float64) map[string]float64 {
	var out map[string]float64
	for _, sc := range d.Scores {
		total, all := 0.0, true
		for _, c := range sc.Sum {
			v, ok := values[strings.ToUpper(c)]
			if !ok {
				all = false
				break
			}
			total += v
		}
		if all {
			if out == nil {
				out = map[string]float64{}
			}
			out[sc.Code] = total
		}
	}
	return out
}

// Set is the instruments a deployment knows: the built-in ones and those
// its studies declare. Read-only after construction; safe for concurrent use.
type Set struct {
	defs map[string]*Definition
}

// NewSet returns the built-in instruments plus extra (which may not reuse
// a built-in code).
func NewSet(extra ...Definition) (*Set, error) {
	s := &Set{defs: map[string]*Definition{}}
	var errs []error
	for _, d := range builtin() {
		if err := s.add(d); err != nil {
			return nil, fmt.Errorf("instruments: built-in %s: %w", d.Code, err) // caught by tests
		}
	}
	for _, d := range extra {
		if err := s.add(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("instruments: %w", errors.Join(errs...))
	}
	return s, nil
}

// Builtin returns the set of built-in instruments only.
func Builtin() *Set {
	s, err := NewSet()
	if err != nil {
		panic(err) // the built-in definitions are checked by tests
	}
	return s
}

func (s *Set) add(d Definition) error {
	if err := d.prepare(); err != nil {
		return err
	}
	if _, dup := s.defs[d.Code]; dup {
		return fmt.Errorf("instrument %s is defined twice", d.Code)
	}
	s.defs[d.Code] = &d
	return nil
}

// Lookup returns the definition of instrument code (any letter case).
func (s *Set) Lookup(code string) (*Definition, bool) {
	if d, ok := s.defs[code]; ok {
		return d, true
	}
	d, ok := s.defs[strings.ToUpper(code)]
	return d, ok
}

// Codes lists the known instrument codes, sorted.
func (s *Set) Codes() []string {
	out := make([]string, 0, len(s.defs))
	for c := range s.defs {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Check validates the instrument and items of sub against the definitions
// and reports every problem at once. uses says whether the submission's
// study uses an instrument (nil: every known one).
func (s *Set) Check(sub codecs.Submission, uses func(instrument string) bool) codecs.FieldErrors {
	_, _, errs := s.Normalise(sub, uses)
	return errs
}

// Normalise is Check that also returns the definition and the items in
// canonical form (when there is no error): one pass for intake, which
// keeps them, and the gateway, which keeps only the verdict.
func (s *Set) Normalise(sub codecs.Submission, uses func(instrument string) bool) (*Definition, []codecs.CleanItem, codecs.FieldErrors) {
	d, ok := s.Lookup(sub.Instrument)
	switch {
	case sub.Instrument == "":
		return nil, nil, nil // the envelope check reports it
	case !ok:
		return nil, nil, codecs.FieldErrors{{Path: "instrument", Reason: fmt.Sprintf("%s is not an instrument eprostream knows (known: %s)",
			codecs.QuoteID(sub.Instrument), strings.Join(s.Codes(), ", "))}}
	case uses != nil && !uses(d.Code):
		return nil, nil, codecs.FieldErrors{{Path: "instrument", Reason: fmt.Sprintf("%s is not an instrument of study %s", d.Code, codecs.QuoteID(sub.StudyID))}}
	}
	var errs codecs.FieldErrors
	items := make([]codecs.CleanItem, 0, len(sub.Items))
	for i, it := range sub.Items {
		ci, err := d.Normalise(it)
		if err != nil {
			errs = append(errs, ItemError(i, d, it, err))
			continue
		}
		items = append(items, ci)
	}
	return d, items, errs
}

// ItemError is the field error of item i of an instrument that refused it.
func ItemError(i int, d *Definition, it codecs.Item, err error) codecs.FieldError {
	if errors.Is(err, errUnknownItem) {
		return codecs.FieldError{Path: fmt.Sprintf("items[%d].code", i),
			Reason: fmt.Sprintf("%s is not an item of %s", codecs.QuoteID(it.Code), d.Code)}
	}
	return codecs.FieldError{Path: fmt.Sprintf("items[%d].value", i), Reason: err.Error()}
}
