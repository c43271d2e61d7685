package codecs

import (
	"encoding/binary"
	"fmt"
	"math"

	json "github.com/goccy/go-json"
	"github.com/tinylib/msgp/msgp"
)

// The subject table's binary format is MessagePack through code generated
// by msgp (state_msgp.go, alert_msgp.go: run `go generate ./codecs` after
// changing SubjectState or Alert), with the JSON field names as keys, so
// a field added later is read as absent from older records.
//go:generate go tool msgp -file state.go -o state_msgp.go -tests=false -io=false -d "tag json" -d "ignore AppliedIDs AppliedSums Points" -d "shim json.RawMessage as:[]byte using:rawToBytes/rawFromBytes"
//go:generate go tool msgp -file alert.go -o alert_msgp.go -tests=false -io=false -d "tag json" -d "timezone utc" -d "ignore AlertOwner"

// Bounds of one subject's state, enforced by the subject group before it
// writes: a record that would exceed one is dead-lettered and the state is
// left as it was. MaxStateBytes keeps every subject-table record a quarter
// of the producer's default 1 MiB limit, so a table write never fails.
const (
	MaxStateItems = 256 // distinct item codes with a history
	MaxStateBytes = 256 << 10
)

// EncodedState is a SubjectState already encoded by EncodeState, for the
// group to check its size before handing it to the table.
type EncodedState []byte

// The first byte of a binary subject-table record is its format version,
// then the state as MessagePack. StateFormatV2 (written now) packs each
// item's points (Points.MarshalMsg); StateFormatV1 wrote them as an array
// of maps and still decodes, as does a record that starts with '{', the
// JSON of earlier releases.
const (
	StateFormatV1 byte = 0x01
	StateFormatV2 byte = 0x02
)

// EncodeState encodes st as the table stores it.
func EncodeState(st SubjectState) (EncodedState, error) {
	b, err := st.MarshalMsg(append(make([]byte, 0, 1+st.Msgsize()), StateFormatV2))
	if err != nil {
		return nil, fmt.Errorf("codecs: encode subject state: %w", err)
	}
	return EncodedState(b), nil
}

// DecodeState decodes a subject-table record of any format: binary
// (StateFormatV2, StateFormatV1) or the JSON of earlier releases.
func DecodeState(data []byte) (SubjectState, error) {
	if len(data) == 0 || data[0] != StateFormatV1 && data[0] != StateFormatV2 {
		v, err := JSON[SubjectState]{}.Decode(data)
		if err != nil {
			return SubjectState{}, err
		}
		return v.(SubjectState), nil
	}
	if len(data) > MaxSubmissionBytes*4 {
		return SubjectState{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	var st SubjectState
	rest, err := st.UnmarshalMsg(data[1:])
	switch {
	case err != nil:
		return SubjectState{}, fmt.Errorf("codecs: subject state: %w", err)
	case len(rest) > 0:
		return SubjectState{}, fmt.Errorf("codecs: subject state: %d bytes after the record", len(rest))
	case st.V != WireVersion:
		return SubjectState{}, fmt.Errorf("%w: %T v=%d", ErrUnknownVersion, st, st.V)
	}
	return st, nil
}

// UndecodableState is what StateCodec yields for a table value it cannot
// read (corrupt, too large, a wire version this build does not know), so
// that a bad value reaches the group's callback as data, not as an error
// that would stop the partition.
type UndecodableState struct {
	Reason string // never quotes the value
}

func (u UndecodableState) Error() string { return "subject state undecodable: " + u.Reason }

// StateCodec is the codec of subject-table. Decode never fails: it yields
// a SubjectState or an UndecodableState. Encode takes a SubjectState (or a
// pointer) or an EncodedState.
type StateCodec struct{}

// Encode implements goka.Codec.
func (StateCodec) Encode(value any) ([]byte, error) {
	switch v := value.(type) {
	case EncodedState:
		return v, nil
	case SubjectState:
		return EncodeState(v)
	case *SubjectState:
		return EncodeState(*v)
	}
	return nil, fmt.Errorf("codecs: cannot encode %T as a subject state", value)
}

// Decode implements goka.Codec.
func (StateCodec) Decode(data []byte) (any, error) {
	st, err := DecodeState(data)
	if err != nil {
		return UndecodableState{Reason: fmt.Sprintf("%d bytes: %v", len(data), err)}, nil
	}
	return st, nil
}

func rawToBytes(r json.RawMessage) []byte   { return r }
func rawFromBytes(b []byte) json.RawMessage { return json.RawMessage(b) }

// MarshalMsg appends the hashes as one MessagePack bin (msgp.Marshaler).
func (a AppliedIDs) MarshalMsg(b []byte) ([]byte, error) {
	return a.appendPacked(msgp.AppendBytesHeader(b, uint32(8*len(a)))), nil
}

// UnmarshalMsg implements msgp.Unmarshaler.
func (a *AppliedIDs) UnmarshalMsg(b []byte) ([]byte, error) {
	raw, rest, err := msgp.ReadBytesZC(b)
	if err == nil {
		*a, err = unpackApplied(raw)
	}
	return rest, err
}

// Msgsize implements msgp.Sizer.
func (a AppliedIDs) Msgsize() int { return msgp.BytesPrefixSize + 8*len(a) }

// MarshalMsg appends the sums as one MessagePack bin (msgp.Marshaler).
func (a AppliedSums) MarshalMsg(b []byte) ([]byte, error) {
	return a.appendPacked(msgp.AppendBytesHeader(b, uint32(4*len(a)))), nil
}

// UnmarshalMsg implements msgp.Unmarshaler.
func (a *AppliedSums) UnmarshalMsg(b []byte) ([]byte, error) {
	raw, rest, err := msgp.ReadBytesZC(b)
	if err == nil {
		*a, err = unpackSums(raw)
	}
	return rest, err
}

// Msgsize implements msgp.Sizer.
func (a AppliedSums) Msgsize() int { return msgp.BytesPrefixSize + 4*len(a) }

// MarshalMsg appends the points as one MessagePack bin (msgp.Marshaler):
// per point the time as a zigzag varint of its difference from the
// previous point's (the first from 0), then the value: an integral value
// of magnitude below 2^52 (every score and most vitals) as a zigzag varint
// shifted left by one, any other (fractions, -0, the very large) as the
// byte 0x01 and its 8 IEEE-754 bytes, big-endian. A day-apart score takes
// 4 bytes instead of the 20 of a {t, v} map.
func (ps Points) MarshalMsg(b []byte) ([]byte, error) {
	n, prev := 0, int64(0)
	for _, p := range ps {
		n += varintLen(zigzag(p.T - prev))
		prev = p.T
		if h, ok := integral(p.V); ok {
			n += varintLen(h)
		} else {
			n += 1 + 8
		}
	}
	b, prev = msgp.AppendBytesHeader(b, uint32(n)), 0
	for _, p := range ps {
		b = binary.AppendVarint(b, p.T-prev)
		prev = p.T
		if h, ok := integral(p.V); ok {
			b = binary.AppendUvarint(b, h)
		} else {
			b = append(b, 0x01)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.V))
		}
	}
	return b, nil
}

// integral is v's packed header when v is integral, of magnitude below
// 2^52 and not -0: its zigzag form shifted left by one (the low bit 0
// tells it from the float tag 0x01).
func integral(v float64) (uint64, bool) {
	i := int64(v)
	if float64(i) != v || i <= -1<<52 || i >= 1<<52 || i == 0 && math.Signbit(v) {
		return 0, false
	}
	return zigzag(i) << 1, true
}

func varintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func zigzag(i int64) uint64 { return uint64(i<<1) ^ uint64(i>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// UnmarshalMsg implements msgp.Unmarshaler: the packed bin of
// StateFormatV2, or the array of {t, v} maps of StateFormatV1.
func (ps *Points) UnmarshalMsg(b []byte) ([]byte, error) {
	if msgp.NextType(b) == msgp.ArrayType {
		return ps.unmarshalV1(b)
	}
	raw, rest, err := msgp.ReadBytesZC(b)
	if err != nil {
		return b, err
	}
	// At least 2 bytes a point; the capacity is bounded for a damaged bin.
	out := make(Points, 0, min(len(raw)/2, 64))
	var t int64
	for len(raw) > 0 {
		d, n := binary.Varint(raw)
		if n <= 0 {
			return b, fmt.Errorf("points: bad time")
		}
		t += d
		raw = raw[n:]
		h, n := binary.Uvarint(raw)
		switch {
		case n <= 0:
			return b, fmt.Errorf("points: bad value")
		case h == 0x01:
			if len(raw) < 1+8 {
				return b, fmt.Errorf("points: cut value")
			}
			out = append(out, Point{T: t, V: math.Float64frombits(binary.BigEndian.Uint64(raw[1:]))})
			raw = raw[1+8:]
		case h&1 != 0:
			return b, fmt.Errorf("points: unknown value tag %#x", h)
		default:
			out = append(out, Point{T: t, V: float64(unzigzag(h >> 1))})
			raw = raw[n:]
		}
	}
	if len(out) == 0 {
		out = nil
	}
	*ps = out
	return rest, nil
}

// unmarshalV1 reads the array of {t, v} maps StateFormatV1 wrote.
func (ps *Points) unmarshalV1(b []byte) ([]byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return b, err
	}
	if int(n) > len(b) {
		return b, fmt.Errorf("points: %d points in %d bytes", n, len(b))
	}
	out := make(Points, n)
	for i := range out {
		if b, err = out[i].UnmarshalMsg(b); err != nil {
			return b, err
		}
	}
	if n == 0 {
		out = nil
	}
	*ps = out
	return b, nil
}

// Msgsize implements msgp.Sizer: an upper bound.
func (ps Points) Msgsize() int { return msgp.BytesPrefixSize + 19*len(ps) }
