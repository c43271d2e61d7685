package intake

import (
	"fmt"
	"strings"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/instruments"
)

// Clean decodes, validates and normalises one raw submission received at
// received: ids as sent (they are validated canonical), item codes in upper
// case, values in canonical units and inside their instrument's range, times
// in UTC with the device's offset kept, and instrument scores added.
func Clean(raw []byte, received time.Time) (codecs.CleanSubmission, error) {
	s, err := codecs.DecodeSubmission(raw, received)
	if err != nil {
		return codecs.CleanSubmission{}, err
	}
	at, _ := codecs.ParseTime(s.SubmittedAt) // validated above
	_, offset := at.Zone()
	format := string(codecs.FormatNative)
	if s.IsFHIR() {
		format = string(codecs.FormatFHIR)
	}
	c := codecs.CleanSubmission{
		V: codecs.WireVersion, MessageID: s.MessageID, StudyID: s.StudyID, SiteID: s.SiteID,
		SubjectID: s.SubjectID, Instrument: strings.ToUpper(s.Instrument), InstrumentVersion: s.InstrumentVersion,
		Source: s.Source, Format: format, SubmittedAt: at.UTC(), OffsetSeconds: offset,
		ReceivedAt: received.UTC(), Extra: s.Extra, Items: make([]codecs.CleanItem, 0, len(s.Items)),
	}
	var errs codecs.FieldErrors
	values := make(map[string]float64, len(s.Items))
	for i, it := range s.Items {
		ci, err := cleanItem(it)
		if err != nil {
			errs = append(errs, codecs.FieldError{Path: fmt.Sprintf("items[%d].value", i), Reason: err.Error()})
			continue
		}
		if ci.Num != nil {
			values[ci.Code] = *ci.Num
		}
		c.Items = append(c.Items, ci)
	}
	if len(errs) > 0 {
		return codecs.CleanSubmission{}, errs
	}
	c.Scores = instruments.Scores(c.Instrument, values)
	return c, nil
}

func cleanItem(it codecs.Item) (codecs.CleanItem, error) {
	ci := codecs.CleanItem{Code: strings.ToUpper(it.Code), Unit: it.Unit}
	var v float64
	switch it.Value.Kind {
	case codecs.KindText:
		if _, known := instruments.RangeOf(ci.Code); known {
			return ci, fmt.Errorf("%s must be a number, not text", ci.Code)
		}
		ci.Text = it.Value.Text
		return ci, nil
	case codecs.KindBool:
		if it.Value.Bool {
			v = 1
		}
	default:
		v = it.Value.Num
	}
	conv, unit, err := instruments.Convert(ci.Code, v, it.Unit)
	if err != nil {
		return ci, fmt.Errorf("%s: %v", ci.Code, err)
	}
	if r, known := instruments.RangeOf(ci.Code); known && !r.Contains(conv) {
		// The value itself is an answer: say what is allowed, not what was sent.
		return ci, fmt.Errorf("%s must be %s", ci.Code, r)
	}
	ci.Num, ci.Unit = &conv, unit
	return ci, nil
}
