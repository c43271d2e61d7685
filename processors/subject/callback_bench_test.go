package subject_test

import (
	"testing"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// BenchmarkCallbackWork is the CPU work of the subject group per clean
// submission, without Kafka or storage: decode the record and the subject's
// state, apply, encode the new state and the alerts. Every record is a
// fresh fold: each pass over the 30 simulated days starts from empty
// states, so no record is a duplicate of one applied before. state=json
// is the table format of earlier releases, for comparison.
func BenchmarkCallbackWork(b *testing.B) {
	jsonState := func(st codecs.SubjectState) ([]byte, error) { return codecs.JSON[codecs.SubjectState]{}.Encode(st) }
	b.Run("state=binary", func(b *testing.B) { callbackWork(b, subject.StateCodec{}.Encode) })
	b.Run("state=json", func(b *testing.B) {
		callbackWork(b, func(v any) ([]byte, error) { return jsonState(v.(codecs.SubjectState)) })
	})
}

func callbackWork(b *testing.B, encode func(any) ([]byte, error)) {
	var raw [][]byte
	for _, c := range thirtyDays(b) {
		enc, _ := codecs.JSON[codecs.CleanSubmission]{}.Encode(c)
		raw = append(raw, enc)
	}
	set := rules.Default()
	table := map[string][]byte{}
	applied := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(raw) == 0 {
			clear(table)
		}
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
		next, alerts, fresh := subject.ApplySubmission(st, c, set, benchStart)
		if fresh {
			applied++
		}
		table[c.SubjectID], _ = encode(next)
		for _, a := range alerts {
			_, _ = codecs.JSON[codecs.Alert]{}.Encode(a)
		}
	}
	b.StopTimer()
	if applied != b.N {
		b.Fatalf("%d of %d records were applied: the benchmark must fold fresh records only", applied, b.N)
	}
}
