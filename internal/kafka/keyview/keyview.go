// Package keyview reads a compacted topic of one record type as a local
// copy (a goka view): a lookup by key is a local read, never a network
// round trip. A value that cannot be decoded never stops the view; its
// lookup reports the error instead.
//
// Until the copy has caught up with the topic once, lookups fail with
// ErrLoading; after that it keeps answering from what it holds while it
// reconnects to a Kafka that is down.
package keyview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/logging"
)

// ErrLoading is returned while the local copy is catching up at start.
var ErrLoading = errors.New("keyview: the local copy is still loading")

// Config says which topic is read, where the copy lives.
type Config struct {
	Topic    string // required
	StateDir string // required
	ClientID string // required
}

// Deps are the view's connections.
type Deps struct {
	Kafka kafkaconfig.Conn
	Log   *slog.Logger // nil discards
	// Options are extra view options (tests: goka's tester).
	Options []goka.ViewOption
}

// View is a local copy of a topic of T records; safe for concurrent use.
type View[T any] struct {
	view     *goka.View
	caughtUp atomic.Bool
}

type undecodable struct{ reason string }

// safe makes a codec's Decode never fail.
type safe struct{ goka.Codec }

func (c safe) Decode(b []byte) (any, error) {
	v, err := c.Codec.Decode(b)
	if err != nil {
		return undecodable{reason: err.Error()}, nil
	}
	return v, nil
}

// New returns a view of cfg.Topic decoded by codec, whose Decode returns a
// T; Run keeps it current.
func New[T any](cfg Config, deps Deps, codec goka.Codec) (*View[T], error) {
	if cfg.Topic == "" || cfg.StateDir == "" || cfg.ClientID == "" {
		return nil, errors.New("keyview: Topic, StateDir and ClientID are required")
	}
	opts := append(kafkaconfig.ViewOptions(deps.Kafka, cfg.ClientID, cfg.StateDir, logging.OrDiscard(deps.Log)), deps.Options...)
	v, err := goka.NewView(deps.Kafka.Brokers, goka.Table(cfg.Topic), safe{codec}, opts...)
	if err != nil {
		return nil, fmt.Errorf("keyview: %s: %w", cfg.Topic, err)
	}
	return &View[T]{view: v}, nil
}

// Run keeps the local copy current until ctx ends.
func (v *View[T]) Run(ctx context.Context) error {
	if err := v.view.Run(ctx); err != nil {
		return fmt.Errorf("keyview: %s: %w", v.view.Topic(), err)
	}
	return nil
}

// Recovered reports whether the local copy has caught up once.
func (v *View[T]) Recovered() bool {
	if v.caughtUp.Load() {
		return true
	}
	if v.view.Recovered() {
		v.caughtUp.Store(true)
		return true
	}
	return false
}

// Get returns key's record; false when the copy holds none.
func (v *View[T]) Get(key string) (T, bool, error) {
	var zero T
	if !v.Recovered() {
		return zero, false, ErrLoading
	}
	got, err := v.view.Get(key)
	if err != nil {
		return zero, false, fmt.Errorf("keyview: %s: %w", v.view.Topic(), err)
	}
	switch r := got.(type) {
	case nil:
		return zero, false, nil
	case T:
		return r, true, nil
	case undecodable:
		return zero, false, fmt.Errorf("keyview: %s: the record of %q is undecodable: %s", v.view.Topic(), key, r.reason)
	default:
		return zero, false, fmt.Errorf("keyview: %s: the record of %q decoded to %T", v.view.Topic(), key, got)
	}
}

// Each calls fn for every decodable record of the local copy until fn
// returns false.
func (v *View[T]) Each(fn func(T) bool) error {
	it, err := v.view.Iterator()
	if err != nil {
		return fmt.Errorf("keyview: %s: %w", v.view.Topic(), err)
	}
	defer it.Release()
	for it.Next() {
		got, err := it.Value()
		if r, ok := got.(T); ok && err == nil {
			if !fn(r) {
				return nil
			}
		}
	}
	return nil
}
