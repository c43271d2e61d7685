package codecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
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
			if len(enc) < 2 || enc[0] != StateFormatV2 {
				t.Fatalf("the record starts % x, want the binary format byte %#x", enc[:min(4, len(enc))], StateFormatV2)
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

// testdata/subject_state_v1.bin is what the first binary format wrote and
// subject_state_v2.bin what this one writes; both must decode in every
// later build. UPDATE_GOLDEN=1 writes the current format's file again,
// which only a new format version may do; older files are never written.
func TestGoldenSubjectStateBinaryDecodes(t *testing.T) {
	for _, path := range []string{"testdata/subject_state_v1.bin", "testdata/subject_state_v2.bin"} {
		if os.Getenv("UPDATE_GOLDEN") == "1" && path == "testdata/subject_state_v2.bin" {
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
			t.Fatalf("%s: %v", path, err)
		}
		if want := richState(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s decodes to\n%+v\nwant\n%+v", path, got, want)
		}
	}
}

// Points pack every value exactly: integral values as varints, fractions,
// negative zero, huge and non-integral values as their IEEE-754 bits, and
// times in any order (deltas may be negative).
func TestPackedPointsAreExact(t *testing.T) {
	ps := Points{{T: 1795000000, V: 3}, {T: 1795086400, V: 0}, {T: 1795000000, V: -2}, {T: 0, V: 38.4},
		{T: -7, V: math.Copysign(0, -1)}, {T: 1 << 62, V: 1 << 53}, {T: -1 << 62, V: -1e300}, {T: 5, V: math.Inf(1)},
		{T: 6, V: 1<<52 - 1}, {T: 7, V: -(1<<52 - 1)}}
	enc, _ := ps.MarshalMsg(nil)
	var got Points
	rest, err := got.UnmarshalMsg(enc)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v, %d bytes left", err, len(rest))
	}
	if len(got) != len(ps) {
		t.Fatalf("%d points, want %d", len(got), len(ps))
	}
	for i := range ps {
		if got[i].T != ps[i].T || math.Float64bits(got[i].V) != math.Float64bits(ps[i].V) {
			t.Fatalf("point %d: %+v, want %+v", i, got[i], ps[i])
		}
	}
	// A day-apart daily score is 4 bytes, not a 20-byte {t, v} map.
	day := Points{{T: 1795000000, V: 2}, {T: 1795086400, V: 3}}
	enc, _ = day.MarshalMsg(nil)
	if len(enc) > 2+5+1+3+1 {
		t.Fatalf("two daily scores packed into %d bytes", len(enc))
	}
	for _, bad := range [][]byte{{0xc4, 1, 0x80}, {0xc4, 2, 0x02, 0x03}, {0xc4, 3, 0x02, 0x01, 0x00}, {0xc4, 2, 0x02, 0x80}} {
		if _, err := new(Points).UnmarshalMsg(bad); err == nil {
			t.Fatalf("damaged points % x decoded", bad)
		}
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
