package warehouse

import "testing"

// The sink trusts its id filters only when the assignment is every
// partition; anything else, or an unknown count, means lookups.
func TestHoldsAll(t *testing.T) {
	for _, c := range []struct {
		held []int32
		n    int
		want bool
	}{
		{[]int32{2, 0, 1}, 3, true},
		{[]int32{0}, 1, true},
		{[]int32{0, 1}, 3, false},
		{[]int32{0, 1, 1}, 3, false},
		{[]int32{0, 1, 3}, 3, false},
		{[]int32{0, 1, 2}, 0, false},
		{nil, 0, false},
	} {
		if got := holdsAll(c.held, c.n); got != c.want {
			t.Errorf("holdsAll(%v, %d) = %v, want %v", c.held, c.n, got, c.want)
		}
	}
}
