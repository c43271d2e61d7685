package codecs

import (
	"fmt"

	// goccy/go-json is a drop-in encoding/json that is several times faster
	// on these records; internal topics are on the hot path of every group.
	json "github.com/goccy/go-json"
)

// WireVersion is the version of the internal records written now. It is
// the only version so far; a record of any other version is refused with
// ErrUnknownVersion.
const WireVersion = 1

// versioned is implemented by the records of internal topics.
type versioned interface{ wireVersion() int }

// JSON is a goka.Codec for one internal record type T, written as JSON with a
// "v" field. Encode takes a T or *T; Decode returns a T.
type JSON[T versioned] struct{}

// Encode implements goka.Codec.
func (JSON[T]) Encode(value any) ([]byte, error) {
	switch v := value.(type) {
	case T:
		return json.Marshal(v)
	case *T:
		return json.Marshal(*v)
	default:
		var zero T
		return nil, fmt.Errorf("codecs: cannot encode %T as %T", value, zero)
	}
}

// Decode implements goka.Codec.
func (JSON[T]) Decode(data []byte) (any, error) {
	var v T
	if len(data) > MaxSubmissionBytes*4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %T: %s", ErrNotJSON, v, jsonProblem(err))
	}
	if n := v.wireVersion(); n != WireVersion {
		return nil, fmt.Errorf("%w: %T v=%d", ErrUnknownVersion, v, n)
	}
	return v, nil
}
