package subject_test

import (
	"testing"
	"time"

	"github.com/eprostream/eprostream/catalog"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// BenchmarkStateAfter30Days folds 30 simulated days of 200 subjects into
// their states and reports the encoded size of a subject-table record (mean
// and max; jsonB is the mean in the JSON format of earlier releases), and
// the cost of applying one submission.
func BenchmarkStateAfter30Days(b *testing.B) {
	clean := thirtyDays(b)
	set := rules.Default()
	var states map[string]codecs.SubjectState
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		states = map[string]codecs.SubjectState{}
		for _, c := range clean {
			states[c.SubjectID], _, _ = subject.ApplySubmission(states[c.SubjectID], c, set, benchStart)
		}
	}
	b.StopTimer()
	total, largest, jsonTotal := 0, 0, 0
	for _, st := range states {
		enc, _ := subject.StateCodec{}.Encode(st)
		total += len(enc)
		largest = max(largest, len(enc))
		js, _ := codecs.JSON[codecs.SubjectState]{}.Encode(st)
		jsonTotal += len(js)
	}
	b.ReportMetric(float64(total)/float64(len(states)), "B/subject")
	b.ReportMetric(float64(jsonTotal)/float64(len(states)), "jsonB/subject")
	b.ReportMetric(float64(largest), "maxB/subject")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(clean)), "ns/submission")
}

var benchStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// thirtyDays is 30 simulated days of 200 subjects, cleaned by intake.
func thirtyDays(b *testing.B) []codecs.CleanSubmission {
	gen, err := loadgen.New(loadgen.Config{Seed: 3, Studies: 1, SitesPerStudy: 2, SubjectsPerSite: 100, Days: 30,
		Start: benchStart, DuplicateRate: -1, MalformedRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	open, _ := catalog.Load("") // every study, the built-in instruments
	var clean []codecs.CleanSubmission
	for {
		r, ok := gen.Next()
		if !ok {
			return clean
		}
		c, err := intake.Clean(open, r.Value, r.SubmittedAt.Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		clean = append(clean, c)
	}
}
