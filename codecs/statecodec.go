package codecs

import "fmt"

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

// EncodeState encodes st as the table stores it.
func EncodeState(st SubjectState) (EncodedState, error) {
	b, err := JSON[SubjectState]{}.Encode(st)
	return EncodedState(b), err
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
	if b, ok := value.(EncodedState); ok {
		return b, nil
	}
	return JSON[SubjectState]{}.Encode(value)
}

// Decode implements goka.Codec.
func (StateCodec) Decode(data []byte) (any, error) {
	v, err := JSON[SubjectState]{}.Decode(data)
	if err != nil {
		return UndecodableState{Reason: fmt.Sprintf("%d bytes: %v", len(data), err)}, nil
	}
	return v, nil
}
