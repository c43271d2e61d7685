package codecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nativeNow is a receipt time five minutes after nativeBase's submitted_at.
var nativeNow = time.Date(2026, 11, 20, 7, 20, 0, 0, time.UTC)

const nativeBase = `{
  "message_id": "msg-0001",
  "study_id": "ONC-301",
  "site_id": "012",
  "subject_id": "ONC-301-012-0042",
  "instrument": "PHQ-9",
  "instrument_version": "1.0",
  "submitted_at": "2026-11-20T08:15:00+01:00",
  "source": "app",
  "items": [
    {"code": "q1", "value": 2},
    {"code": "temp", "value": 38.2, "unit": "Cel"},
    {"code": "smoker", "value": false},
    {"code": "comment", "value": "slept badly"}
  ]
}`

// jsonWith returns base with some top-level fields replaced by raw JSON;
// an empty replacement deletes the field.
func jsonWith(t testing.TB, base string, set map[string]string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		t.Fatalf("base document: %v", err)
	}
	for k, v := range set {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = json.RawMessage(v)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal document: %v", err)
	}
	return b
}

// normalised makes two decodings of the same data comparable: Marshal
// compacts extra fields, so their bytes differ from the input's.
func normalised(t testing.TB, s Submission) Submission {
	t.Helper()
	s.Format = "" // where the bytes came from, not what they say
	if len(s.Extra) == 0 {
		s.Extra = nil
		return s
	}
	extra := make(map[string]json.RawMessage, len(s.Extra))
	for k, raw := range s.Extra {
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatalf("extra field %q: %v", k, err)
		}
		extra[k] = b
	}
	s.Extra = extra
	return s
}

// wantFieldError fails unless err is a FieldErrors holding path with a
// reason containing reason.
func wantFieldError(t *testing.T, err error, path, reason string) {
	t.Helper()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want FieldErrors", err, err)
	}
	for _, e := range fe {
		if e.Path == path && strings.Contains(e.Reason, reason) {
			return
		}
	}
	t.Fatalf("error = %v, want %s: ...%s...", err, path, reason)
}

func TestSubmissionRoundTrip(t *testing.T) {
	body := jsonWith(t, nativeBase, map[string]string{
		"x_device": `{"os": "iOS 19", "app": "2.4.1", "tags": ["a", "<b>"]}`,
		"x_locale": `"de-CH"`,
	})
	first, err := DecodeSubmission(body, nativeNow)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(first.Extra) != 2 || first.Extra["x_locale"] == nil || first.Extra["x_device"] == nil {
		t.Fatalf("Extra = %v, want x_device and x_locale", first.Extra)
	}
	want := []Item{
		{Code: "q1", Value: Number(2)},
		{Code: "temp", Value: Number(38.2), Unit: "Cel"},
		{Code: "smoker", Value: Value{Kind: KindBool}},
		{Code: "comment", Value: Text("slept badly")},
	}
	if !reflect.DeepEqual(first.Items, want) {
		t.Fatalf("items = %+v, want %+v", first.Items, want)
	}
	out, err := json.Marshal(first)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	for _, field := range []string{`"x_locale":"de-CH"`, `"x_device":{`, `"message_id":"msg-0001"`} {
		if !bytes.Contains(out, []byte(field)) {
			t.Errorf("marshalled %s lacks %s", out, field)
		}
	}
	second, err := DecodeSubmission(out, nativeNow)
	if err != nil {
		t.Fatalf("decode again: %v", err)
	}
	if !reflect.DeepEqual(normalised(t, first), normalised(t, second)) {
		t.Fatalf("round trip changed the submission:\n%+v\n%+v", first, second)
	}
}

func TestSubmissionMarshalDecode(t *testing.T) {
	in := Submission{
		MessageID: "m-1", StudyID: "S", SiteID: "01", SubjectID: "P-1", Instrument: "EQ-5D-5L",
		SubmittedAt: "2026-11-20T07:15:00.123456789Z",
		Items: []Item{
			{Code: "mobility", Value: Number(1)},
			{Code: "vas", Value: Number(-0.5)},
			{Code: "note", Value: Text("naïve \"quoted\" \u2028 <tag>")},
		},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if bytes.Contains(b, []byte("instrument_version")) || bytes.Contains(b, []byte(`"source"`)) {
		t.Errorf("empty optional fields written: %s", b)
	}
	out, err := DecodeSubmission(b, nativeNow)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	in.Format = FormatNative // bytes an emitter writes are a native envelope
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
}

func TestDecodeSubmissionAtSizeLimit(t *testing.T) {
	body := []byte(nativeBase)
	body = append(body, bytes.Repeat([]byte(" "), MaxSubmissionBytes-len(body))...)
	if _, err := DecodeSubmission(body, nativeNow); err != nil {
		t.Fatalf("body of exactly MaxSubmissionBytes: %v", err)
	}
	_, err := DecodeSubmission(append(body, ' '), nativeNow)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body one byte over the limit: err = %v, want ErrTooLarge", err)
	}
}

func TestDecodeSubmissionSentinels(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"truncated", []byte(`{"message_id": "m`), ErrNotJSON},
		{"trailing garbage", []byte(nativeBase + "}"), ErrNotJSON},
		{"empty", nil, ErrNotJSON},
		{"array", []byte(`[1, 2]`), ErrNotJSON},
		{"too large", bytes.Repeat([]byte("x"), MaxSubmissionBytes+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSubmission(tt.body, nativeNow)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeSubmissionInvalid(t *testing.T) {
	items := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"code":"q%d","value":1}`, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	tests := []struct {
		name   string
		set    map[string]string
		path   string
		reason string
	}{
		{"no message_id", map[string]string{"message_id": ""}, "message_id", "is required"},
		{"no study_id", map[string]string{"study_id": ""}, "study_id", "is required"},
		{"no site_id", map[string]string{"site_id": `""`}, "site_id", "is required"},
		{"no subject_id", map[string]string{"subject_id": ""}, "subject_id", "is required"},
		{"no instrument", map[string]string{"instrument": ""}, "instrument", "is required"},
		{"no submitted_at", map[string]string{"submitted_at": ""}, "submitted_at", "is required"},
		{"message_id of 129", map[string]string{"message_id": `"` + strings.Repeat("a", 129) + `"`}, "message_id", "is 129 characters, at most 128"},
		{"space in subject_id", map[string]string{"subject_id": `"ONC 301"`}, "subject_id", "may hold only"},
		{"slash in message_id", map[string]string{"message_id": `"a/b"`}, "message_id", "may hold only"},
		{"leading dash", map[string]string{"study_id": `"-S"`}, "study_id", "must start with a letter or digit"},
		{"bad version", map[string]string{"instrument_version": `"1 0"`}, "instrument_version", "may hold only"},
		{"bad source", map[string]string{"source": `"my app"`}, "source", "may hold only"},
		{"no items", map[string]string{"items": ""}, "items", "at least one item"},
		{"empty items", map[string]string{"items": `[]`}, "items", "at least one item"},
		{"too many items", map[string]string{"items": items(MaxItems + 1)}, "items", "has 501 items, at most 500"},
		{"duplicate code", map[string]string{"items": `[{"code":"q1","value":1},{"code":"q1","value":2}]`}, "items[1].code", "q1 appears more than once"},
		{"bad code", map[string]string{"items": `[{"code":"q 1","value":1}]`}, "items[0].code", "must be 1-64"},
		{"code of 65", map[string]string{"items": `[{"code":"` + strings.Repeat("c", 65) + `","value":1}]`}, "items[0].code", "must be 1-64"},
		{"null value", map[string]string{"items": `[{"code":"q1","value":null}]`}, "items[0].value", "is required"},
		{"no value", map[string]string{"items": `[{"code":"q1"}]`}, "items[0].value", "is required"},
		{"long text", map[string]string{"items": `[{"code":"q1","value":"` + strings.Repeat("x", MaxTextLen+1) + `"}]`}, "items[0].value", "text is 4001 bytes"},
		{"long unit", map[string]string{"items": `[{"code":"q1","value":1,"unit":"` + strings.Repeat("u", 33) + `"}]`}, "items[0].unit", "longer than 32"},
		{"no offset", map[string]string{"submitted_at": `"2026-11-20T08:15:00"`}, "submitted_at", "with an offset"},
		{"date only", map[string]string{"submitted_at": `"2026-11-20"`}, "submitted_at", "RFC 3339"},
		{"far future", map[string]string{"submitted_at": `"2026-11-20T09:00:00Z"`}, "submitted_at", "in the future"},
		{"too old", map[string]string{"submitted_at": `"2025-10-15T07:00:00Z"`}, "submitted_at", "more than 400 days old"},
		{"items a string", map[string]string{"items": `"x"`}, "$", "items must be an array, not string"},
		{"message_id a number", map[string]string{"message_id": `42`}, "$", "message_id must be a string, not number"},
		{"items of strings", map[string]string{"items": `["q1"]`}, "$", "must be an object, not string"},
		{"value an object", map[string]string{"items": `[{"code":"q1","value":{"n":1}}]`}, "$", ""},
		{"value out of range", map[string]string{"items": `[{"code":"q1","value":1e999}]`}, "$", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSubmission(jsonWith(t, nativeBase, tt.set), nativeNow)
			wantFieldError(t, err, tt.path, tt.reason)
		})
	}
}

func TestDecodeSubmissionSkewBoundaries(t *testing.T) {
	submitted := time.Date(2026, 11, 20, 7, 15, 0, 0, time.UTC)
	for _, now := range []time.Time{submitted.Add(-MaxFutureSkew), submitted.Add(MaxAge)} {
		if _, err := DecodeSubmission([]byte(nativeBase), now); err != nil {
			t.Errorf("now %s: %v", now, err)
		}
	}
}

func TestDecodeSubmissionInvalidUTF8(t *testing.T) {
	body := bytes.Replace([]byte(nativeBase), []byte("slept badly"), []byte("slept \xff badly"), 1)
	_, err := DecodeSubmission(body, nativeNow)
	wantFieldError(t, err, "$", "not valid UTF-8")
}

func TestDecodeSubmissionErrorsKeepTextOut(t *testing.T) {
	const secret = "my neighbour poisons me"
	body := jsonWith(t, nativeBase, map[string]string{
		"message_id": `"bad id"`,
		"items":      `[{"code":"q1","value":"` + secret + `"},{"code":"q1","value":"` + secret + `"}]`,
	})
	_, err := DecodeSubmission(body, nativeNow.Add(24*time.Hour*500))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v, want an error without the free text", err)
	}
}

// A key that differs from a known field only in case would fill that field
// (the json package matches names case-insensitively) and also be kept in
// Extra, so the forwarded envelope could decode to a different message_id.
// It is rejected, naming the key.
func TestDecodeSubmissionCaseVariantKey(t *testing.T) {
	body := []byte(`{"MESSAGE_ID":"b","message_id":"a","study_id":"s","site_id":"1","subject_id":"p",` +
		`"instrument":"i","submitted_at":"2026-11-20T08:15:00+01:00","items":[{"code":"q","value":1}]}`)
	_, err := DecodeSubmission(body, nativeNow)
	if err == nil || !strings.Contains(err.Error(), `field "MESSAGE_ID" differs from "message_id" only in case`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeSubmissionExplainsBadValuesAndNull(t *testing.T) {
	body := []byte(`{"message_id":"a","study_id":"s","site_id":"1","subject_id":"p",` +
		`"instrument":"i","submitted_at":"2026-11-20T08:15:00+01:00","items":[{"code":"q","value":{}}]}`)
	if _, err := DecodeSubmission(body, nativeNow); err == nil || !strings.Contains(err.Error(), "must be a finite number, a boolean or a string") {
		t.Fatalf("object value: %v", err)
	}
	for _, b := range []string{"null", "[]", `"x"`, "3"} {
		if _, err := DecodeSubmission([]byte(b), nativeNow); !errors.Is(err, ErrNotJSON) {
			t.Fatalf("%s: %v, want ErrNotJSON", b, err)
		}
	}
}
