package loadgen_test

import (
	"fmt"

	"github.com/eprostream/eprostream/internal/loadgen"
)

func Example() {
	g, err := loadgen.New(loadgen.Config{Seed: 1, Studies: 1, SitesPerStudy: 1, SubjectsPerSite: 2, Days: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("planned:", g.Planned())
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		// Produce rec.Value with key rec.Key and timestamp rec.SubmittedAt.
		if rec.Kind == loadgen.Malformed {
			fmt.Println(rec.Kind, rec.Key)
			continue
		}
		fmt.Println(rec.Kind, rec.Key, rec.Submission.Instrument, rec.Submission.SubmittedAt)
	}
	// Output:
	// planned: 6
	// valid ONC-301-001-0002 PRO-CTCAE 2026-11-01T07:57:41+02:00
	// valid ONC-301-001-0002 NRS-PAIN 2026-11-01T08:01:25+02:00
	// valid ONC-301-001-0002 VITALS 2026-11-01T08:04:00+02:00
	// valid ONC-301-001-0001 PRO-CTCAE 2026-11-01T14:27:29+02:00
	// valid ONC-301-001-0001 NRS-PAIN 2026-11-01T14:29:32+02:00
	// valid ONC-301-001-0001 VITALS 2026-11-01T14:32:25+02:00
}
