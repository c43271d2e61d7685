package subject_test

import (
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/loadgen"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// BenchmarkCallbackWork is the CPU work of the subject group per clean
// submission, without Kafka or storage: decode the record and the subject's
// state, apply, encode the new state and the alerts.
func BenchmarkCallbackWork(b *testing.B) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	gen, _ := loadgen.New(loadgen.Config{Seed: 3, Studies: 1, SitesPerStudy: 2, SubjectsPerSite: 100, Days: 30, Start: start,
		DuplicateRate: -1, MalformedRate: -1})
	var raw [][]byte
	for {
		r, ok := gen.Next()
		if !ok {
			break
		}
		c, _ := intake.Clean(r.Value, r.SubmittedAt.Add(time.Minute))
		enc, _ := codecs.JSON[codecs.CleanSubmission]{}.Encode(c)
		raw = append(raw, enc)
	}
	set := rules.Default()
	table := map[string][]byte{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := codecs.JSON[codecs.CleanSubmission]{}.Decode(raw[i%len(raw)])
		if err != nil {
			b.Fatal(err)
		}
		c := v.(codecs.CleanSubmission)
		var st codecs.SubjectState
		if prev, ok := table[c.SubjectID]; ok {
			s, _ := subject.StateCodec{}.Decode(prev)
			st = s.(codecs.SubjectState)
		}
		next, alerts, _ := subject.ApplySubmission(st, c, set, start)
		table[c.SubjectID], _ = subject.StateCodec{}.Encode(next)
		for _, a := range alerts {
			_, _ = codecs.JSON[codecs.Alert]{}.Encode(a)
		}
	}
}
