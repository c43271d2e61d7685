package codecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

// richState fills every field of SubjectState, the outbox's alerts
// included, as the subject group writes them (times in UTC).
func richState() SubjectState {
	st := goldenState()
	st.EnrolledAt = 1761900000
	st.PlanBefore = json.RawMessage(`{"drug":"x","dose_mg":25}`)
	st.Pos = map[string]InputPos{"clean": {Topic: "id:Zm9v", Partition: 3, Offset: 1 << 40}, "commands": {Topic: "epro-commands", Partition: 0, Offset: 7}}
	base := 1.5
	st.Outbox = append(st.Outbox, OutboxAlert{From: "m-3", Alert: Alert{V: 1, AlertID: "al-2", RuleID: "fever", RuleVersion: 2,
		Severity: "warning", StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: "ONC-301-012-0042", MessageID: "m-3",
		SubmittedAt: time.Date(2026, 11, 3, 20, 15, 0, 123456789, time.UTC), RaisedAt: time.Date(2026, 11, 3, 20, 15, 1, 5, time.UTC),
		Evidence: Evidence{Item: "BODY_TEMPERATURE", Values: []float64{38.4, -0.25}, Unit: "Cel", Baseline: &base, Threshold: 38, Detail: "at_least"}}})
	st.Acked = []string{"al-0", "al-9"}
	st.Items["NEGATIVE"] = &ItemHistory{Recent: []Point{{T: -5, V: -1e300}}}
	return st
}

func TestBinaryStateRoundTrip(t *testing.T) {
	for name, st := range map[string]SubjectState{"rich": richState(), "empty": {V: WireVersion}, "golden": goldenState()} {
		t.Run(name, func(t *testing.T) {
			enc, err := EncodeState(st)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) < 2 || enc[0] != StateFormatV1 {
				t.Fatalf("the record starts % x, want the binary format byte %#x", enc[:min(4, len(enc))], StateFormatV1)
			}
			got, err := DecodeState(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, st) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
			}
			// The codec goka uses gives the same.
			v, _ := StateCodec{}.Decode(enc)
			if !reflect.DeepEqual(v, st) {
				t.Fatalf("StateCodec.Decode: %+v", v)
			}
		})
	}
}

// A record the JSON format wrote (every release before the binary one)
// decodes to the same state as its binary re-encoding; the group rewrites
// it in binary at its next change.
func TestJSONStatesStillDecodeAndMoveToBinary(t *testing.T) {
	st := richState()
	js, err := JSON[SubjectState]{}.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := DecodeState(js)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeState(fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	fromBinary, err := DecodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromBinary, fromJSON) || normalisedState(t, fromJSON) != normalisedState(t, st) {
		t.Fatalf("JSON then binary:\n%+v\nwant\n%+v", fromBinary, fromJSON)
	}
	if len(enc) >= len(js) {
		t.Errorf("binary %d bytes, JSON %d: the binary record should be the smaller", len(enc), len(js))
	}
	t.Logf("rich state: JSON %d bytes, binary %d bytes", len(js), len(enc))
}

// testdata/subject_state_v1.bin is what the first binary format wrote;
// it must decode in every later build. UPDATE_GOLDEN=1 writes it again,
// which only a new format version may do.
func TestGoldenSubjectStateBinaryV1Decodes(t *testing.T) {
	const path = "testdata/subject_state_v1.bin"
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		enc, err := EncodeState(richState())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := richState(); !reflect.DeepEqual(got, want) {
		t.Fatalf("golden binary v1 decodes to\n%+v\nwant\n%+v", got, want)
	}
}

// A damaged record is an error, never a panic or a state: every
// truncation, trailing bytes, a hash list of the wrong length, an unknown
// wire version.
func TestDamagedBinaryStatesAreErrors(t *testing.T) {
	enc, err := EncodeState(richState())
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(enc); n++ {
		if _, err := DecodeState(enc[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(enc))
		}
		v, _ := StateCodec{}.Decode(enc[:n])
		if _, ok := v.(UndecodableState); !ok {
			t.Fatalf("StateCodec gave %T for a cut record, want UndecodableState", v)
		}
	}
	if _, err := DecodeState(append(bytes.Clone(enc), 0xc0)); err == nil {
		t.Fatal("trailing bytes decoded")
	}
	other := richState()
	other.V = WireVersion + 1
	enc2, _ := EncodeState(other)
	if _, err := DecodeState(enc2); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("wire version %d: %v, want ErrUnknownVersion", other.V, err)
	}
	var bad AppliedIDs
	if _, err := bad.UnmarshalMsg([]byte{0xc4, 3, 1, 2, 3}); err == nil {
		t.Fatal("a 3-byte applied list decoded")
	}
	var badSums AppliedSums
	if _, err := badSums.UnmarshalMsg([]byte{0xc4, 3, 1, 2, 3}); err == nil {
		t.Fatal("a 3-byte sums list decoded")
	}
}

func FuzzDecodeState(f *testing.F) {
	enc, _ := EncodeState(richState())
	f.Add([]byte(enc))
	js, _ := JSON[SubjectState]{}.Encode(richState())
	f.Add(js)
	f.Add([]byte{StateFormatV1})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeState(data)
		if err != nil {
			return
		}
		// What decodes encodes, and decodes to the same again.
		again, err := EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeState(again); err != nil {
			t.Fatalf("a decoded state's own encoding does not decode: %v", err)
		}
	})
}
