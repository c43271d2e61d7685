// Package catalog is the study catalogue: which studies exist, which sites
// take part in each, which instruments each study uses, and how each enrols
// its subjects. It is a YAML file that a deployment keeps beside its rule
// sets, the same file for every process (STUDIES_FILE):
//
//	studies:
//	  - id: ONC-301
//	    name: Oncology symptom diary
//	    sites: [SITE-001, SITE-002]
//	    instruments: [PRO-CTCAE, PHQ-9, VITALS]   # default: every built-in instrument
//	    enrollment: required                       # or first-report (the default)
//	    fhir_subject_system: https://onc301.example.org/subject-id  # FHIR subject.identifier system of its subject ids
//	instruments:                                  # the study's own instruments, beside the built-in ones
//	  - code: ONC-DIARY
//	    items:
//	      - {code: MOUTH_SORES_TODAY, type: integer, min: 0, max: 1}
//	questionnaires:                               # FHIR R4 Questionnaire files (JSON), relative to this file
//	  - questionnaires/phq9-site-app.json
//
// FHIR is the mapping of FHIR resources through the built-in forms and the
// listed Questionnaires (package fhir).
//
// CheckSubmission is the one validation of a submission's study, site,
// instrument and items: the gateway and intake both call it, so a record
// the gateway accepts is one intake accepts.
//
// An empty catalogue (no file) accepts every study and site, with the
// built-in instruments and the first-report policy.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/instruments"
)

// Enrolment policies.
const (
	// FirstReport enrols an unknown subject at the site of its first
	// accepted submission; later submissions naming another study or site
	// are refused.
	FirstReport = "first-report"
	// Required refuses submissions of subjects not enrolled beforehand
	// (POST /v1/subjects, `eprostream enroll`).
	Required = "required"
)

// Study is one catalogued study.
type Study struct {
	ID          string   `yaml:"id" json:"id"`
	Name        string   `yaml:"name" json:"name,omitempty"`
	Sites       []string `yaml:"sites" json:"sites"`
	Instruments []string `yaml:"instruments,omitempty" json:"instruments,omitempty"`
	Enrollment  string   `yaml:"enrollment,omitempty" json:"enrollment,omitempty"`
	// FHIRSubjectSystem is the identifier system under which FHIR resources
	// name the study's subject ids (subject.identifier), for systems that
	// send no Patient reference.
	FHIRSubjectSystem string `yaml:"fhir_subject_system,omitempty" json:"fhir_subject_system,omitempty"`
}

// Catalogue is read-only after Load and safe for concurrent use.
type Catalogue struct {
	studies     map[string]Study
	instruments *instruments.Set
	fhir        *fhir.Mapper
}

// Load reads the catalogue at path; "" gives the open catalogue.
func Load(path string) (*Catalogue, error) {
	if path == "" {
		c := &Catalogue{instruments: instruments.Builtin()}
		return c, c.mapFHIR(nil)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return parse(b, filepath.Dir(path))
}

// Parse reads a catalogue from YAML and says everything wrong with it;
// Questionnaire files are read relative to the working directory.
func Parse(b []byte) (*Catalogue, error) { return parse(b, ".") }

func (c *Catalogue) mapFHIR(qs []fhir.Questionnaire) error {
	lib, err := fhir.NewLibrary(c.instruments, qs...)
	if err != nil {
		return fmt.Errorf("catalog: questionnaires: %w", err)
	}
	c.fhir = &fhir.Mapper{Library: lib, Uses: c.Uses, SubjectSystem: c.subjectSystem}
	return nil
}

func (c *Catalogue) subjectSystem(system string) (string, bool) {
	for _, s := range c.studies {
		if s.FHIRSubjectSystem == system {
			return s.ID, true
		}
	}
	return "", false
}

// FHIR maps FHIR resources through the catalogue's forms.
func (c *Catalogue) FHIR() *fhir.Mapper { return c.fhir }

func readQuestionnaires(dir string, paths []string) ([]fhir.Questionnaire, error) {
	var errs []error
	qs := make([]fhir.Questionnaire, 0, len(paths))
	for i, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("questionnaires[%d]: %w", i, err))
			continue
		}
		var q fhir.Questionnaire
		if err := json.Unmarshal(b, &q); err != nil {
			errs = append(errs, fmt.Errorf("questionnaires[%d] (%s): not a FHIR JSON Questionnaire: %w", i, p, err))
			continue
		}
		qs = append(qs, q)
	}
	return qs, errors.Join(errs...)
}

func parse(b []byte, dir string) (*Catalogue, error) {
	var doc struct {
		Studies        []Study                  `yaml:"studies"`
		Instruments    []instruments.Definition `yaml:"instruments"`
		Questionnaires []string                 `yaml:"questionnaires"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	set, err := instruments.NewSet(doc.Instruments...)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalogue{studies: map[string]Study{}, instruments: set}
	var errs []error
	for i, s := range doc.Studies {
		if err := codecs.CheckID(s.ID); err != nil {
			errs = append(errs, fmt.Errorf("studies[%d].id: %w", i, err))
		}
		if _, dup := c.studies[s.ID]; dup {
			errs = append(errs, fmt.Errorf("studies[%d].id: %s is listed twice", i, s.ID))
		}
		for j, site := range s.Sites {
			if err := codecs.CheckID(site); err != nil {
				errs = append(errs, fmt.Errorf("studies[%d].sites[%d]: %w", i, j, err))
			}
		}
		for j, code := range s.Instruments {
			d, ok := set.Lookup(code)
			if !ok {
				errs = append(errs, fmt.Errorf("studies[%d].instruments[%d]: %s is not defined (built in: %s)", i, j, code, strings.Join(set.Codes(), ", ")))
				continue
			}
			s.Instruments[j] = d.Code
		}
		for _, o := range doc.Studies[:i] {
			if s.FHIRSubjectSystem != "" && o.FHIRSubjectSystem == s.FHIRSubjectSystem {
				errs = append(errs, fmt.Errorf("studies[%d].fhir_subject_system: %s is also study %s's", i, s.FHIRSubjectSystem, o.ID))
			}
		}
		switch s.Enrollment {
		case "":
			s.Enrollment = FirstReport
		case FirstReport, Required:
		default:
			errs = append(errs, fmt.Errorf("studies[%d].enrollment: %q, want %s or %s", i, s.Enrollment, Required, FirstReport))
		}
		c.studies[s.ID] = s
	}
	if len(doc.Studies) == 0 {
		errs = append(errs, errors.New("no studies listed"))
	}
	qs, err := readQuestionnaires(dir, doc.Questionnaires)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("catalog: %w", errors.Join(errs...))
	}
	return c, c.mapFHIR(qs)
}

// Open reports whether the catalogue accepts every study.
func (c *Catalogue) Open() bool { return c.studies == nil }

// Instruments is the set of instruments the catalogue knows.
func (c *Catalogue) Instruments() *instruments.Set { return c.instruments }

// Study returns a catalogued study; an open catalogue has every study, with
// the defaults.
func (c *Catalogue) Study(id string) (Study, bool) {
	if c.Open() {
		return Study{ID: id, Enrollment: FirstReport}, true
	}
	s, ok := c.studies[id]
	return s, ok
}

// Uses reports whether study uses instrument (every defined one when the
// study lists none).
func (c *Catalogue) Uses(study, instrument string) bool {
	s, ok := c.Study(study)
	if !ok {
		return false
	}
	d, defined := c.instruments.Lookup(instrument)
	if !defined {
		return false
	}
	return len(s.Instruments) == 0 || slices.Contains(s.Instruments, d.Code)
}

// CheckSubmission reports every problem of s's study, site, instrument and
// items at once (the envelope itself is codecs' to check). It is the one
// function the gateway and intake both run.
func (c *Catalogue) CheckSubmission(s codecs.Submission) codecs.FieldErrors {
	_, _, errs := c.NormaliseSubmission(s)
	return errs
}

// NormaliseSubmission is CheckSubmission that also returns the instrument's
// definition and the items in canonical form, so intake checks and cleans
// in one pass.
func (c *Catalogue) NormaliseSubmission(s codecs.Submission) (*instruments.Definition, []codecs.CleanItem, codecs.FieldErrors) {
	var errs codecs.FieldErrors
	studyErr, siteErr := c.Check(s.StudyID, s.SiteID)
	if studyErr != nil && s.StudyID != "" && codecs.CheckID(s.StudyID) == nil {
		errs = append(errs, codecs.FieldError{Path: "study_id", Reason: studyErr.Error()})
	}
	if siteErr != nil && codecs.CheckID(s.SiteID) == nil {
		errs = append(errs, codecs.FieldError{Path: "site_id", Reason: siteErr.Error()})
	}
	if studyErr != nil {
		return nil, nil, errs
	}
	d, items, ierrs := c.instruments.Normalise(s, func(instr string) bool { return c.Uses(s.StudyID, instr) })
	return d, items, append(errs, ierrs...)
}

// Check says what is wrong with (study, site), or nil.
func (c *Catalogue) Check(study, site string) (studyErr, siteErr error) {
	if c.Open() {
		return nil, nil
	}
	s, ok := c.studies[study]
	if !ok {
		return errors.New("is not a study in the catalogue"), nil
	}
	if len(s.Sites) > 0 && !slices.Contains(s.Sites, site) {
		return nil, fmt.Errorf("is not a site of study %s", study)
	}
	return nil, nil
}

// Studies lists the catalogued studies in no particular order.
func (c *Catalogue) Studies() []Study {
	out := make([]Study, 0, len(c.studies))
	for _, s := range c.studies {
		out = append(out, s)
	}
	return out
}
