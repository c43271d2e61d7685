// Package catalog is the study catalogue: which studies exist and which
// sites take part in each. The gateway refuses submissions for a study or
// site it does not list. The catalogue is a YAML file that a deployment
// keeps beside its rule sets:
//
//	studies:
//	  - id: ONC-301
//	    name: Oncology symptom diary
//	    sites: [SITE-001, SITE-002]
//
// An empty catalogue (no file) accepts every study and site.
package catalog

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/eprostream/eprostream/codecs"
)

// Study is one catalogued study.
type Study struct {
	ID    string   `yaml:"id" json:"id"`
	Name  string   `yaml:"name" json:"name,omitempty"`
	Sites []string `yaml:"sites" json:"sites"`
}

// Catalogue is read-only after Load and safe for concurrent use.
type Catalogue struct {
	studies map[string]Study
}

// Load reads the catalogue at path; "" gives the open catalogue.
func Load(path string) (*Catalogue, error) {
	if path == "" {
		return &Catalogue{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return Parse(b)
}

// Parse reads a catalogue from YAML and says everything wrong with it.
func Parse(b []byte) (*Catalogue, error) {
	var doc struct {
		Studies []Study `yaml:"studies"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalogue{studies: map[string]Study{}}
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
		c.studies[s.ID] = s
	}
	if len(doc.Studies) == 0 {
		errs = append(errs, errors.New("no studies listed"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("catalog: %w", errors.Join(errs...))
	}
	return c, nil
}

// Open reports whether the catalogue accepts every study.
func (c *Catalogue) Open() bool { return c.studies == nil }

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
