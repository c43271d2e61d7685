package hotcache

import (
	"bytes"
	"encoding/json"
)

// Codec turns a cached value into bytes and back. Decode must not return a
// value that shares memory with its input: concurrent Gets of one key each
// decode their own copy, so callers may modify what they get.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// JSON is the default codec: encoding/json of T.
type JSON[T any] struct{}

// Encode implements Codec.
func (JSON[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec.
func (JSON[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Bytes keeps []byte values as they are (a view rendered once, served many
// times).
type Bytes struct{}

// Encode implements Codec.
func (Bytes) Encode(v []byte) ([]byte, error) { return v, nil }

// Decode implements Codec; the result is a copy.
func (Bytes) Decode(b []byte) ([]byte, error) { return bytes.Clone(b), nil }
