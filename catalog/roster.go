package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/keyview"
)

// The roster is the registry's enrolled subjects: the compacted topic
// epro-enrolments (key subject_id, value codecs.Enrolment), read by every
// process that needs it as a goka view, a local copy kept current from
// Kafka. A lookup is a local read, never a network round trip.
//
// Staleness: a binding written by one process is visible to another once
// its view has read the record, typically milliseconds after Kafka
// acknowledged it (the tests measure it). A process sees its own writes at
// once (Remember).
//
// Kafka down: the local copy keeps answering for the subjects it holds;
// a subject it does not hold is unknown, and an unknown subject of a study
// with the required policy is refused (fail closed). Before the copy has
// caught up with the topic at start, lookups fail with ErrRosterLoading.

// ErrRosterLoading is returned while the roster's local copy is still
// catching up with Kafka at start.
var ErrRosterLoading = errors.New("catalog: the enrolment roster is still loading")

// RosterConfig says where the roster is read.
type RosterConfig struct {
	Topic    string // epro-enrolments with its prefix; required
	StateDir string // the view's local copy; required
	ClientID string // default eprostream-roster
}

// RosterDeps are the roster's connections.
type RosterDeps struct {
	Kafka kafkaconfig.Conn
	Log   *slog.Logger // nil discards
	// Options are extra view options (tests: goka's tester).
	Options []goka.ViewOption
}

// Roster answers "is this subject enrolled, where": safe for concurrent use.
// The local copy is a keyview.View (an undecodable record never stops it);
// the roster adds this process's own writes until the view has them.
type Roster struct {
	view *keyview.View[codecs.Enrolment]
	mu   sync.RWMutex
	own  map[string]codecs.Enrolment // written by this process, until the view has them
}

const maxOwn = 100_000

// NewRoster returns a roster; Run keeps it current.
func NewRoster(cfg RosterConfig, deps RosterDeps) (*Roster, error) {
	if cfg.Topic == "" || cfg.StateDir == "" {
		return nil, errors.New("catalog: roster: Topic and StateDir are required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "eprostream-roster"
	}
	v, err := keyview.New[codecs.Enrolment](keyview.Config{Topic: cfg.Topic, StateDir: cfg.StateDir, ClientID: cfg.ClientID},
		keyview.Deps{Kafka: deps.Kafka, Log: deps.Log, Options: deps.Options}, codecs.JSON[codecs.Enrolment]{})
	if err != nil {
		return nil, fmt.Errorf("catalog: roster: %w", err)
	}
	return &Roster{view: v, own: map[string]codecs.Enrolment{}}, nil
}

// Run keeps the local copy current until ctx ends.
func (r *Roster) Run(ctx context.Context) error {
	if err := r.view.Run(ctx); err != nil {
		return fmt.Errorf("catalog: roster: %w", err)
	}
	return nil
}

// Recovered reports whether the local copy has caught up once.
func (r *Roster) Recovered() bool { return r.view.Recovered() }

// Enrolment returns subject's binding; false when it is not enrolled.
func (r *Roster) Enrolment(subject string) (codecs.Enrolment, bool, error) {
	stored, found, err := r.view.Get(subject)
	if errors.Is(err, keyview.ErrLoading) {
		return codecs.Enrolment{}, false, ErrRosterLoading
	}
	if err != nil {
		return codecs.Enrolment{}, false, fmt.Errorf("catalog: roster: %w", err)
	}
	r.mu.RLock()
	own, mine := r.own[subject]
	r.mu.RUnlock()
	if !mine {
		return stored, found, nil
	}
	if found && stored.Revision >= own.Revision {
		r.mu.Lock()
		delete(r.own, subject) // the view has caught up
		r.mu.Unlock()
		return stored, true, nil
	}
	return own, true, nil
}

// Remember makes e visible to this process at once, before its view reads
// it back from Kafka. Call it after Kafka acknowledged e.
func (r *Roster) Remember(e codecs.Enrolment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.own) >= maxOwn {
		clear(r.own) // the view has long read them back
	}
	r.own[e.SubjectID] = e
}

// Each calls fn for every enrolment of the local copy (the missed-diary
// sweep and the warehouse read the roster this way).
func (r *Roster) Each(fn func(codecs.Enrolment) bool) error {
	if err := r.view.Each(fn); err != nil {
		return fmt.Errorf("catalog: roster: %w", err)
	}
	return nil
}
