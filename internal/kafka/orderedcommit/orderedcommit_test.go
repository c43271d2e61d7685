package orderedcommit

import "testing"

func TestCommitsOnlyContiguousRuns(t *testing.T) {
	tr := &tracker{done: map[int64]bool{}}
	for o := int64(10); o < 15; o++ {
		tr.delivered(o)
	}
	steps := []struct {
		consumed int64
		next     int64
		ok       bool
	}{
		{11, 0, false}, // 10 still in flight: committing 12 would skip it
		{13, 0, false},
		{10, 12, true}, // 10 and 11 done
		{12, 14, true}, // 12 and 13
		{14, 15, true},
	}
	for _, s := range steps {
		next, ok := tr.consumed(s.consumed)
		if next != s.next || ok != s.ok {
			t.Fatalf("consumed(%d) = %d, %v; want %d, %v", s.consumed, next, ok, s.next, s.ok)
		}
	}
	if len(tr.pending) != 0 || len(tr.done) != 0 {
		t.Fatalf("tracker not empty: %v %v", tr.pending, tr.done)
	}
}
