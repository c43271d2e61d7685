package codecs_test

import (
	"fmt"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/eprostream/eprostream/codecs"
)

// Sums stay aligned with the applied ids: when the memory is full, and when
// a state from before sums were kept has fewer of them than ids.
func TestSumsStayAlignedWithAppliedIDs(t *testing.T) {
	var st codecs.SubjectState
	for i := range codecs.MaxApplied + 100 {
		st.MarkAppliedSum(fmt.Sprintf("m%d", i), uint32(i+1))
	}
	if len(st.Applied) != codecs.MaxApplied || len(st.Sums) != codecs.MaxApplied {
		t.Fatalf("%d ids, %d sums; want %d of each", len(st.Applied), len(st.Sums), codecs.MaxApplied)
	}
	last := fmt.Sprintf("m%d", codecs.MaxApplied+99)
	if st.Conflicts(last, uint32(codecs.MaxApplied+100)) || !st.Conflicts(last, 7) {
		t.Fatal("the latest id's sum is not where Conflicts looks")
	}
	if first := fmt.Sprintf("m%d", 100); st.Conflicts(first, 101) || !st.Conflicts(first, 7) {
		t.Fatal("the oldest kept id's sum is not where Conflicts looks")
	}

	var old codecs.SubjectState // ids from before sums were kept
	for i := range 10 {
		old.MarkApplied(fmt.Sprintf("o%d", i))
	}
	old.Sums = nil
	old.MarkAppliedSum("n1", 42)
	if old.Conflicts("o3", 9) {
		t.Fatal("an id without a sum conflicted")
	}
	if !old.Conflicts("n1", 43) || old.Conflicts("n1", 42) {
		t.Fatal("the new id's sum is misaligned")
	}
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	var back codecs.SubjectState
	if err := json.Unmarshal(b, &back); err != nil || !back.Conflicts("n1", 43) || len(back.Sums) != 1 {
		t.Fatalf("sums after a round trip: %v %v", back.Sums, err)
	}
}

// The same report says the same thing whatever its arrival; another value
// says something else.
func TestBodySum(t *testing.T) {
	v, w := 2.0, 3.0
	a := codecs.CleanSubmission{StudyID: "S", SiteID: "X", Instrument: "PRO-CTCAE", Items: []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: &v}}}
	b := a
	b.Source, b.Format = "fhir-app", "fhir"
	c := a
	c.Items = []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: &w}}
	if codecs.BodySum(a) != codecs.BodySum(b) || codecs.BodySum(a) == codecs.BodySum(c) || codecs.BodySum(a) == 0 {
		t.Fatalf("sums %d %d %d", codecs.BodySum(a), codecs.BodySum(b), codecs.BodySum(c))
	}
}
