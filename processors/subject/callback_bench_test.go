package subject_test

import (
	"testing"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// BenchmarkCallbackWork is the CPU work of the subject group per clean
// submission, without Kafka or storage: decode the record and the subject's
// state, apply, encode the new state and the alerts.
func BenchmarkCallbackWork(b *testing.B) {
	var raw [][]byte
	for _, c := range thirtyDays(b) {
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
		next, alerts, _ := subject.ApplySubmission(st, c, set, benchStart)
		table[c.SubjectID], _ = subject.StateCodec{}.Encode(next)
		for _, a := range alerts {
			_, _ = codecs.JSON[codecs.Alert]{}.Encode(a)
		}
	}
}
