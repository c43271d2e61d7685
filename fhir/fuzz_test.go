package fhir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/eprostream/eprostream/codecs"
)

// FuzzMap holds the mapping to never panic and to refuse only with field
// errors (FHIRPath expressions) or as not JSON, too large or unreadable.
func FuzzMap(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	mp := testMapper(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mp.Map(b, enrolled)
		var fe codecs.FieldErrors
		switch {
		case err == nil:
			if m == nil || m.Submission.Origin() != codecs.FormatFHIR {
				t.Fatalf("mapped without a FHIR submission: %+v", m)
			}
		case errors.As(err, &fe):
			for _, e := range fe {
				if e.Path == "" {
					t.Fatalf("a field error without an expression: %v", err)
				}
			}
		case errors.Is(err, codecs.ErrNotJSON), errors.Is(err, codecs.ErrTooLarge), errors.Is(err, ErrUnavailable):
		default:
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		_, _, _ = ReadBundle(b, 10)
	})
}
