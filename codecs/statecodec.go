package codecs

import (
	"fmt"

	json "github.com/goccy/go-json"
	"github.com/tinylib/msgp/msgp"
)

// The subject table's binary format is MessagePack through code generated
// by msgp (state_msgp.go, alert_msgp.go: run `go generate ./codecs` after
// changing SubjectState or Alert), with the JSON field names as keys, so
// a field added later is read as absent from older records.
//go:generate go tool msgp -file state.go -o state_msgp.go -tests=false -io=false -d "tag json" -d "ignore AppliedIDs AppliedSums" -d "shim json.RawMessage as:[]byte using:rawToBytes/rawFromBytes"
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

// StateFormatV1 is the first byte of a binary subject-table record: one
// version byte, then the state as MessagePack. A record that starts with
// '{' is the JSON of earlier releases, and still decodes.
const StateFormatV1 byte = 0x01

// EncodeState encodes st as the table stores it.
func EncodeState(st SubjectState) (EncodedState, error) {
	b, err := st.MarshalMsg(append(make([]byte, 0, 1+st.Msgsize()), StateFormatV1))
	if err != nil {
		return nil, fmt.Errorf("codecs: encode subject state: %w", err)
	}
	return EncodedState(b), nil
}

// DecodeState decodes a subject-table record of either format: binary
// (StateFormatV1) or the JSON of earlier releases.
func DecodeState(data []byte) (SubjectState, error) {
	if len(data) == 0 || data[0] != StateFormatV1 {
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
