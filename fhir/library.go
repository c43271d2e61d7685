package fhir

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/instruments"
)

// Library is the forms a deployment knows: one built-in form per
// instrument (and per LOINC panel) and the Questionnaires its catalogue
// lists. Read-only after construction; safe for concurrent use.
type Library struct {
	set   *instruments.Set
	forms []*Form            // built-in and catalogue forms
	byURL map[string][]*Form // every version of a url
	byID  map[string]*Form
	added AddedForms // nil: none
}

// AddedForms finds the forms studies added at run time, by "url:<url>" or
// "id:<id>"; a form of another study than the response's is not found.
type AddedForms interface {
	Form(key, study string) (*Form, bool, error)
}

// WithAdded is l that also resolves the forms a finds.
func (l *Library) WithAdded(a AddedForms) *Library {
	c := *l
	c.added = a
	return &c
}

// NewLibrary returns the built-in forms of set's instruments plus qs.
func NewLibrary(set *instruments.Set, qs ...Questionnaire) (*Library, error) {
	l := &Library{set: set, byURL: map[string][]*Form{}, byID: map[string]*Form{}}
	for _, code := range set.Codes() {
		d, _ := set.Lookup(code)
		l.add(builtinForm(d, BuiltinBase+d.Code, d.Code))
		for _, c := range d.Codings {
			if c.System == loincSystem {
				l.add(builtinForm(d, LOINCBase+c.Code, c.Code))
			}
		}
	}
	var errs []error
	for i, q := range qs {
		f, _, err := Compile(q, set)
		if err != nil {
			errs = append(errs, fmt.Errorf("questionnaire %d (%s): %w", i, q.URL, err))
			continue
		}
		if f.ID != "" && l.byID[f.ID] != nil {
			errs = append(errs, fmt.Errorf("questionnaire %d: id %s is already taken", i, f.ID))
			continue
		}
		l.add(f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

// Instruments is the set the forms map onto.
func (l *Library) Instruments() *instruments.Set { return l.set }

func (l *Library) add(f *Form) {
	l.forms = append(l.forms, f)
	if f.URL != "" {
		l.byURL[f.URL] = append(l.byURL[f.URL], f)
	}
	if f.ID != "" && l.byID[f.ID] == nil {
		l.byID[f.ID] = f
	}
}

// Taken reports whether the catalogue or the built-in forms already have
// url or id, which an added Questionnaire may therefore not use.
func (l *Library) Taken(url, id string) bool {
	return len(l.byURL[url]) > 0 || l.byID[id] != nil || l.byID[strings.ToUpper(id)] != nil
}

// errUnknownForm says a canonical names no form.
type errUnknownForm struct{ canonical string }

func (e errUnknownForm) Error() string {
	return fmt.Sprintf("%s is not a Questionnaire of this study; add it (PUT /fhir/Questionnaire/{id}, or the catalogue's questionnaires:) or name a built-in one (%s<instrument>, %s<LOINC panel>)",
		codecs.QuoteID(e.canonical), BuiltinBase, LOINCBase)
}

// Resolve finds the form a response of study names by its questionnaire
// canonical: the exact url (and version, when both say one) among the
// catalogue's forms and those the study added, then "Questionnaire/<id>"
// and, for the built-in forms, a last segment naming an instrument or a
// LOINC panel.
func (l *Library) Resolve(canonical, study string) (*Form, error) {
	url, version, _ := strings.Cut(canonical, "|")
	var versions []string
	candidates := l.byURL[url]
	if l.added != nil {
		f, ok, err := l.added.Form("url:"+url, study)
		if err != nil {
			return nil, err
		}
		if ok {
			candidates = append(candidates[:len(candidates):len(candidates)], f)
		}
	}
	for _, f := range candidates {
		if version == "" || f.Version == "" || f.Version == version {
			return f, nil
		}
		versions = append(versions, f.Version)
	}
	if len(versions) > 0 {
		sort.Strings(versions)
		return nil, fmt.Errorf("version %s of %s is not known (known: %s)", codecs.QuoteID(version), codecs.QuoteID(url), strings.Join(versions, ", "))
	}
	id := url
	if i := strings.LastIndexByte(strings.TrimRight(url, "/"), '/'); i >= 0 {
		id = strings.TrimRight(url, "/")[i+1:]
	}
	relative := strings.HasPrefix(url, "Questionnaire/") || strings.HasPrefix(url, "#")
	if f := l.byID[id]; f != nil && (relative || f.builtin) {
		return f, nil
	}
	if f := l.byID[strings.ToUpper(id)]; f != nil && f.builtin {
		return f, nil
	}
	if relative && l.added != nil {
		f, ok, err := l.added.Form("id:"+id, study)
		if err != nil {
			return nil, err
		}
		if ok {
			return f, nil
		}
	}
	return nil, errUnknownForm{canonical}
}

// Match finds the one form whose linkIds cover every one of linkIDs among
// the built-in and catalogue forms of the instruments uses accepts, for a
// response that names no Questionnaire.
func (l *Library) Match(linkIDs []string, uses func(instrument string) bool) (*Form, error) {
	var found []*Form
	seen := map[string]bool{}
	for _, f := range l.forms {
		if seen[f.Instrument] || (uses != nil && !uses(f.Instrument)) {
			continue
		}
		all := len(linkIDs) > 0
		for _, id := range linkIDs {
			if it, _ := f.item(id); it == nil {
				all = false
				break
			}
		}
		if all {
			found = append(found, f)
			seen[f.Instrument] = true
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("names no questionnaire, and its linkIds (%s) are not all items of one instrument of the study; name its Questionnaire",
			quoteList(linkIDs, 5))
	default:
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = f.Instrument
		}
		return nil, fmt.Errorf("names no questionnaire, and its linkIds fit several instruments (%s); name its Questionnaire", strings.Join(names, ", "))
	}
}

func quoteList(ids []string, n int) string {
	var out []string
	for i, id := range ids {
		if i == n {
			out = append(out, "…")
			break
		}
		out = append(out, codecs.QuoteID(id))
	}
	return strings.Join(out, ", ")
}
