package intake

import (
	"time"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
)

// Clean decodes, validates and normalises one raw submission received at
// received, against cat: the envelope (codecs), then the study, site,
// instrument and items (cat.CheckSubmission, the gateway's own check).
// The result has ids as sent (they are validated canonical), item codes in
// upper case, values in canonical units and inside their item's range,
// times in UTC with the device's offset kept, and instrument scores added.
func Clean(cat *catalog.Catalogue, raw []byte, received time.Time) (codecs.CleanSubmission, error) {
	s, err := codecs.DecodeSubmission(raw, received)
	if err != nil {
		return codecs.CleanSubmission{}, err
	}
	def, items, errs := cat.NormaliseSubmission(s) // the gateway's own check
	if len(errs) > 0 {
		return codecs.CleanSubmission{}, errs
	}
	if def == nil { // no instrument: Validate above refuses that first
		return codecs.CleanSubmission{}, codecs.FieldErrors{{Path: "instrument", Reason: "is required"}}
	}
	at, _ := codecs.ParseTime(s.SubmittedAt) // validated above
	_, offset := at.Zone()
	format := string(s.Origin())
	c := codecs.CleanSubmission{
		V: codecs.WireVersion, MessageID: s.MessageID, StudyID: s.StudyID, SiteID: s.SiteID,
		SubjectID: s.SubjectID, Instrument: def.Code, InstrumentVersion: s.InstrumentVersion,
		Source: s.Source, Format: format, SubmittedAt: at.UTC(), OffsetSeconds: offset,
		ReceivedAt: received.UTC(), Extra: s.Extra, Items: items,
	}
	values := make(map[string]float64, len(items))
	for _, ci := range items {
		if ci.Num != nil {
			values[ci.Code] = *ci.Num
		}
	}
	c.Scores = def.ComputeScores(values)
	return c, nil
}
