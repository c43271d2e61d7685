package loadgen

import (
	"encoding/json"
	"strconv"

	"github.com/eprostream/eprostream/codecs"
)

// marshalNative encodes an envelope to the very bytes json.Marshal gives
// (the tests check this), without reflection: encoding is most of a
// record's cost and a load generator should not be the bottleneck it
// measures.
func marshalNative(sub *codecs.Submission) []byte {
	if len(sub.Extra) > 0 {
		b, _ := json.Marshal(sub) // cannot fail: the generator builds only valid values
		return b
	}
	b := make([]byte, 0, 192+48*len(sub.Items))
	b = appendField(b, `{"message_id":`, sub.MessageID)
	b = appendField(b, `,"study_id":`, sub.StudyID)
	b = appendField(b, `,"site_id":`, sub.SiteID)
	b = appendField(b, `,"subject_id":`, sub.SubjectID)
	b = appendField(b, `,"instrument":`, sub.Instrument)
	if sub.InstrumentVersion != "" {
		b = appendField(b, `,"instrument_version":`, sub.InstrumentVersion)
	}
	b = appendField(b, `,"submitted_at":`, sub.SubmittedAt)
	if sub.Source != "" {
		b = appendField(b, `,"source":`, sub.Source)
	}
	if sub.Items == nil {
		return append(b, `,"items":null}`...)
	}
	b = append(b, `,"items":[`...)
	for i, it := range sub.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(b, `{"code":`, it.Code)
		b = append(b, `,"value":`...)
		b = appendValue(b, it.Value)
		if it.Unit != "" {
			b = appendField(b, `,"unit":`, it.Unit)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendField(b []byte, name, v string) []byte {
	return appendString(append(b, name...), v)
}

func appendValue(b []byte, v codecs.Value) []byte {
	switch v.Kind {
	case codecs.KindNumber:
		return strconv.AppendFloat(b, v.Num, 'g', -1, 64) // as Value.MarshalJSON
	case codecs.KindBool:
		return strconv.AppendBool(b, v.Bool)
	case codecs.KindText:
		return appendString(b, v.Text)
	default:
		return append(b, "null"...)
	}
}

// appendString quotes plain ASCII directly and leaves anything json.Marshal
// would escape (quotes, controls, <>&, non-ASCII) to json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
