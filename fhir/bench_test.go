package fhir

import (
	"testing"

	"github.com/eprostream/eprostream/codecs"
)

// The cost of mapping one resource, beside decoding a native envelope of
// the same report (the anchor: what a native submission costs).
func BenchmarkMap(b *testing.B) {
	mp := testMapper(b)
	for _, name := range []string{"qr-phq9-lhcforms.json", "qr-phq9-mii.json", "observation-blood-pressure.json", "bundle-device-hub-transaction.json"} {
		body := fixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if name == "bundle-device-hub-transaction.json" {
					_, entries, err := ReadBundle(body, 100)
					if err != nil {
						b.Fatal(err)
					}
					for _, e := range entries {
						if _, err := mp.Map(e.Resource, enrolled); err != nil {
							b.Fatal(err)
						}
					}
					continue
				}
				if _, err := mp.Map(body, enrolled); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	m, err := mp.Map(fixture(b, "qr-phq9-lhcforms.json"), enrolled)
	if err != nil {
		b.Fatal(err)
	}
	native, err := m.Submission.MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("anchor: the same PHQ-9 as a native envelope", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(native)))
		for b.Loop() {
			if _, err := codecs.ParseSubmission(native); err != nil {
				b.Fatal(err)
			}
		}
	})
}
