package fhir

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/instruments"
)

// URLs the mapping reads.
const (
	loincSystem     = "http://loinc.org"
	ordinalValueURL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
	itemWeightURL   = "http://hl7.org/fhir/StructureDefinition/itemWeight"
	// StudyExtension and SiteExtension are eprostream's own extensions:
	// accepted, never required (the enrolment decides).
	StudyExtension = "https://eprostream.org/fhir/StructureDefinition/study-id"
	SiteExtension  = "https://eprostream.org/fhir/StructureDefinition/site-id"
	// InstrumentExtension names the instrument a Questionnaire maps to,
	// for one whose code does not say it.
	InstrumentExtension = "https://eprostream.org/fhir/StructureDefinition/instrument"
	// BuiltinBase is the canonical base of the built-in forms: one per
	// instrument, <base><instrument code>.
	BuiltinBase = "https://eprostream.org/fhir/Questionnaire/"
	// LOINCBase is the canonical base of the built-in LOINC forms:
	// http://loinc.org/q/44249-1 is PHQ-9.
	LOINCBase = "http://loinc.org/q/"
)

// Questionnaire is the part of a FHIR R4 Questionnaire the mapping reads.
type Questionnaire struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id,omitempty"`
	URL          string      `json:"url,omitempty"`
	Version      string      `json:"version,omitempty"`
	Name         string      `json:"name,omitempty"`
	Title        string      `json:"title,omitempty"`
	Status       string      `json:"status,omitempty"`
	Code         []Coding    `json:"code,omitempty"`
	Extension    []Extension `json:"extension,omitempty"`
	Item         []QItem     `json:"item,omitempty"`
}

// QItem is one item of a Questionnaire.
type QItem struct {
	LinkID       string         `json:"linkId"`
	Type         string         `json:"type,omitempty"`
	Text         string         `json:"text,omitempty"`
	Code         []Coding       `json:"code,omitempty"`
	AnswerOption []AnswerOption `json:"answerOption,omitempty"`
	Item         []QItem        `json:"item,omitempty"`
}

// AnswerOption is one permitted answer of a choice item.
type AnswerOption struct {
	ValueCoding  *Coding     `json:"valueCoding,omitempty"`
	ValueInteger *int        `json:"valueInteger,omitempty"`
	Extension    []Extension `json:"extension,omitempty"`
}

// Coding is a code in a code system.
type Coding struct {
	System    string      `json:"system,omitempty"`
	Code      string      `json:"code,omitempty"`
	Display   string      `json:"display,omitempty"`
	Extension []Extension `json:"extension,omitempty"`
}

// Extension is the part of an extension the mapping reads.
type Extension struct {
	URL          string   `json:"url"`
	ValueDecimal *float64 `json:"valueDecimal,omitempty"`
	ValueInteger *int     `json:"valueInteger,omitempty"`
	ValueString  *string  `json:"valueString,omitempty"`
}

func weightOf(exts []Extension) (float64, bool) {
	for _, e := range exts {
		if e.URL != ordinalValueURL && e.URL != itemWeightURL {
			continue
		}
		switch {
		case e.ValueDecimal != nil:
			return *e.ValueDecimal, true
		case e.ValueInteger != nil:
			return float64(*e.ValueInteger), true
		}
	}
	return 0, false
}

// Form is a Questionnaire compiled against an instrument: what each linkId
// means. Read-only; safe for concurrent use.
type Form struct {
	ID, URL, Version string
	Instrument       string // the instrument's code
	links            map[string]*formItem
	// unknown are the linkIds of items the instrument does not have, with
	// the reason: a response that answers one is refused.
	unknown map[string]string
	builtin bool
}

type formItem struct {
	code    string             // the instrument item
	answers map[string]float64 // "system|code" → score
}

// Canonical is the form's url|version.
func (f *Form) Canonical() string {
	if f.Version == "" {
		return f.URL
	}
	return f.URL + "|" + f.Version
}

// item finds what a linkId means: the item, or why it has none.
func (f *Form) item(linkID string) (*formItem, string) {
	if it, ok := f.links[linkID]; ok {
		return it, ""
	}
	if f.builtin {
		if it, ok := f.links[strings.ToUpper(linkID)]; ok {
			return it, ""
		}
	}
	if why, ok := f.unknown[linkID]; ok {
		return nil, why
	}
	return nil, fmt.Sprintf("linkId %s is not an item of questionnaire %s", codecs.QuoteID(linkID), f.Canonical())
}

// Compile maps q onto the instrument it names and says everything that
// cannot be mapped. Items the instrument lacks are not an error: they are
// listed as warnings, and a response that answers one is refused.
func Compile(q Questionnaire, set *instruments.Set) (*Form, []string, error) {
	var errs []error
	if q.ResourceType != "" && q.ResourceType != "Questionnaire" {
		return nil, nil, fmt.Errorf("resourceType is %s, want Questionnaire", codecs.QuoteID(q.ResourceType))
	}
	if q.URL == "" && q.ID == "" {
		errs = append(errs, errors.New("url is required (responses name their Questionnaire by it)"))
	}
	if q.ID != "" && !validFHIRID(q.ID) {
		errs = append(errs, fmt.Errorf("id %s must be 1-64 letters, digits, '-' or '.'", codecs.QuoteID(q.ID)))
	}
	def, err := instrumentOf(q, set)
	if err != nil {
		return nil, nil, errors.Join(append(errs, err)...)
	}
	f := &Form{ID: q.ID, URL: q.URL, Version: q.Version, Instrument: def.Code,
		links: map[string]*formItem{}, unknown: map[string]string{}}
	var warnings []string
	var walk func(path string, items []QItem)
	walk = func(path string, items []QItem) {
		for i, it := range items {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case it.LinkID == "":
				errs = append(errs, fmt.Errorf("%s.linkId is required", p))
			case f.links[it.LinkID] != nil || f.unknown[it.LinkID] != "":
				errs = append(errs, fmt.Errorf("%s.linkId %s is used twice", p, codecs.QuoteID(it.LinkID)))
			case it.Type == "group" || it.Type == "display":
			default:
				code, why := itemOf(def, it)
				if code == "" {
					f.unknown[it.LinkID] = why
					warnings = append(warnings, fmt.Sprintf("%s: %s; a response answering it is refused", p, why))
					break
				}
				fi := &formItem{code: code}
				for j, o := range it.AnswerOption {
					if o.ValueCoding == nil {
						continue
					}
					w, ok := weightOf(o.Extension)
					if !ok {
						w, ok = weightOf(o.ValueCoding.Extension)
					}
					if !ok {
						w, ok = loincAnswer(*o.ValueCoding)
					}
					if !ok {
						errs = append(errs, fmt.Errorf("%s.answerOption[%d]: coding %s has no score (give it an ordinalValue or itemWeight extension)",
							p, j, codecs.QuoteID(o.ValueCoding.System+"|"+o.ValueCoding.Code)))
						continue
					}
					if fi.answers == nil {
						fi.answers = map[string]float64{}
					}
					fi.answers[o.ValueCoding.System+"|"+o.ValueCoding.Code] = w
				}
				f.links[it.LinkID] = fi
			}
			walk(p+".item", it.Item)
		}
	}
	walk("item", q.Item)
	if len(f.links) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no item maps onto an item of %s", def.Code))
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	return f, warnings, nil
}

func loincAnswer(c Coding) (float64, bool) {
	return codecs.FHIRCoding{System: c.System, Code: c.Code}.Score()
}

// instrumentOf finds the instrument a Questionnaire maps to: its code (a
// LOINC panel), the instrument extension, else the one instrument all its
// coded items belong to.
func instrumentOf(q Questionnaire, set *instruments.Set) (*instruments.Definition, error) {
	for _, e := range q.Extension {
		if e.URL == InstrumentExtension && e.ValueString != nil {
			d, ok := set.Lookup(*e.ValueString)
			if !ok {
				return nil, fmt.Errorf("extension instrument: %s is not an instrument eprostream knows", codecs.QuoteID(*e.ValueString))
			}
			return d, nil
		}
	}
	for _, code := range set.Codes() {
		d, _ := set.Lookup(code)
		for _, c := range q.Code {
			if hasCoding(d.Codings, c) {
				return d, nil
			}
		}
	}
	found := map[string]*instruments.Definition{}
	var walk func([]QItem)
	walk = func(items []QItem) {
		for _, it := range items {
			for _, code := range set.Codes() {
				d, _ := set.Lookup(code)
				if c, _ := itemOf(d, it); c != "" && it.Type != "group" && it.Type != "display" {
					found[d.Code] = d
				}
			}
			walk(it.Item)
		}
	}
	walk(q.Item)
	if len(found) == 1 {
		for _, d := range found {
			return d, nil
		}
	}
	names := make([]string, 0, len(found))
	for c := range found {
		names = append(names, c)
	}
	sort.Strings(names)
	if len(names) > 1 {
		return nil, fmt.Errorf("its items belong to several instruments (%s); name one with the %s extension", strings.Join(names, ", "), InstrumentExtension)
	}
	return nil, fmt.Errorf("neither its code nor its items' codes name an instrument eprostream knows; name one with the %s extension", InstrumentExtension)
}

// itemOf finds the instrument item a Questionnaire item is: by its codes,
// else by its linkId (an item code, a declared linkId or a LOINC code,
// "/44250-9" as LHC-Forms writes them).
func itemOf(d *instruments.Definition, it QItem) (string, string) {
	for _, c := range it.Code {
		for _, di := range d.Items {
			if hasCoding(di.Codings, c) {
				return di.Code, ""
			}
		}
	}
	if code := linkItem(d, it.LinkID); code != "" {
		return code, ""
	}
	var codes []string
	for _, c := range it.Code {
		codes = append(codes, c.System+"|"+c.Code)
	}
	if len(codes) == 0 {
		return "", fmt.Sprintf("item %s has no code and its linkId is not an item of %s", codecs.QuoteID(it.LinkID), d.Code)
	}
	return "", fmt.Sprintf("item %s (%s) is not an item of %s", codecs.QuoteID(it.LinkID), strings.Join(codes, ", "), d.Code)
}

func linkItem(d *instruments.Definition, linkID string) string {
	if di, ok := d.Item(linkID); ok {
		return di.Code
	}
	bare := strings.TrimPrefix(linkID, "/")
	for _, di := range d.Items {
		if slices.Contains(di.LinkIDs, linkID) || hasCoding(di.Codings, Coding{System: loincSystem, Code: bare}) {
			return di.Code
		}
	}
	return ""
}

func hasCoding(cs []instruments.Coding, c Coding) bool {
	for _, x := range cs {
		if x.Code == c.Code && (x.System == c.System || c.System == "") {
			return true
		}
	}
	return false
}

// builtinForm is the form of a definition every study may use: linkIds are
// its item codes, its declared linkIds and its LOINC codes, with or without
// a leading '/'.
func builtinForm(d *instruments.Definition, url, id string) *Form {
	f := &Form{ID: id, URL: url, Version: d.Version, Instrument: d.Code, links: map[string]*formItem{}, builtin: true}
	for _, it := range d.Items {
		fi := &formItem{code: it.Code}
		f.links[it.Code] = fi
		for _, l := range it.LinkIDs {
			f.links[l] = fi
		}
		for _, c := range it.Codings {
			if c.System == loincSystem {
				f.links[c.Code] = fi
				f.links["/"+c.Code] = fi
			}
		}
	}
	return f
}

// validFHIRID reports whether id is a FHIR logical id: 1-64 of [A-Za-z0-9.-].
func validFHIRID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
