package codecs

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// The hand-written checks accept exactly what the patterns they replace do.
func TestIDAndCodeChecksMatchTheirPatterns(t *testing.T) {
	idPattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:\-]*$`)
	codePattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$`)
	alphabet := []byte("aZ09._:-/ é\x00\n<'")
	valid := []byte("aZ09._:-")
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 400_000 {
		from := alphabet
		if n%2 == 0 {
			from = valid // long strings that are (almost) valid, around the 64-byte limit
		}
		b := make([]byte, r.IntN(70))
		for i := range b {
			b[i] = from[r.IntN(len(from))]
		}
		s := string(b)
		if validID(s) != idPattern.MatchString(s) {
			t.Fatalf("validID(%q) = %v, pattern says %v", s, validID(s), idPattern.MatchString(s))
		}
		if validCode(s) != codePattern.MatchString(s) {
			t.Fatalf("validCode(%q) = %v, pattern says %v", s, validCode(s), codePattern.MatchString(s))
		}
	}
}
