package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
)

// Registrar changes enrolments: under the subject's registry lock (so two
// gateways, or a gateway and `eprostream enroll`, never write conflicting
// revisions), it reads the current binding, lets the caller decide, and
// writes the new revision (acks=all) where something changed, with the
// binding it replaces (the audit trail's "before").
//
// The current binding is the newer of the local roster's and the lock's
// record (fencedlock), which every writer stores after Kafka acknowledged
// the revision. So a decision never rests on a roster that has not yet
// read another process's write: two gateways taking the first report of
// one subject at different sites enrol it once, and the second is refused.
// The limit: a writer whose lock expired (LockTTL, 10 s) between its Kafka
// write and its record is not seen until the roster reads it.
type Registrar struct {
	Roster interface {
		Enrolment(subject string) (codecs.Enrolment, bool, error)
		Remember(e codecs.Enrolment)
	}
	Sender interface {
		Emit(ctx context.Context, e codecs.Enrolment) error
	}
	Locks      *fencedlock.Locker
	LockPrefix string        // the topic prefix: one lock space per environment
	LockTTL    time.Duration // default 10 s
}

// Outcome is what a change did.
type Outcome int

// The outcomes.
const (
	Written   Outcome = iota // a new revision is in Kafka
	Unchanged                // already so: nothing written
	Conflict                 // refused by the decision
)

// ErrBusy is returned while another change of the subject holds its lock.
var ErrBusy = errors.New("catalog: another change of this subject's enrolment is in progress")

// Change runs decide on subject's current binding under its lock and writes
// what it returns. decide returns the new enrolment, or ok false to refuse
// (Conflict); returning the current one unchanged is Unchanged.
func (r Registrar) Change(ctx context.Context, subject string,
	decide func(cur codecs.Enrolment, found bool) (next codecs.Enrolment, ok bool)) (codecs.Enrolment, bool, Outcome, error) {
	ttl := r.LockTTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	lock, err := r.Locks.Obtain(ctx, r.lockName(subject), ttl)
	if errors.Is(err, fencedlock.ErrHeld) {
		return codecs.Enrolment{}, false, Conflict, ErrBusy
	}
	if err != nil {
		return codecs.Enrolment{}, false, Conflict, fmt.Errorf("catalog: registry lock: %w", err)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	cur, found, err := r.current(ctx, subject)
	if err != nil {
		return codecs.Enrolment{}, false, Conflict, err
	}
	next, ok := decide(cur, found)
	switch {
	case !ok:
		return cur, found, Conflict, nil
	case found && next == cur:
		return cur, found, Unchanged, nil
	}
	next.Previous = nil
	if found {
		before := cur.Binding()
		next.Previous = &before
	}
	if err := r.Sender.Emit(ctx, next); err != nil {
		return cur, found, Conflict, fmt.Errorf("catalog: write enrolment: %w", err)
	}
	r.Roster.Remember(next)
	rec, _ := codecs.JSON[codecs.Enrolment]{}.Encode(next)
	if err := lock.Store(ctx, rec); err != nil {
		return next, found, Written, fmt.Errorf("catalog: enrolment written to Kafka but not recorded beside its lock: %w", err)
	}
	return next, found, Written, nil
}

func (r Registrar) lockName(subject string) string { return "enrol:" + r.LockPrefix + subject }

// current is the subject's latest binding: the roster's, or the lock's
// record when that is a newer revision.
func (r Registrar) current(ctx context.Context, subject string) (codecs.Enrolment, bool, error) {
	cur, found, err := r.Roster.Enrolment(subject)
	if err != nil {
		return codecs.Enrolment{}, false, err
	}
	raw, recorded, err := r.Locks.Load(ctx, r.lockName(subject))
	if err != nil {
		return codecs.Enrolment{}, false, fmt.Errorf("catalog: registry record: %w", err)
	}
	if !recorded {
		return cur, found, nil
	}
	v, err := codecs.JSON[codecs.Enrolment]{}.Decode(raw)
	if err != nil {
		return codecs.Enrolment{}, false, fmt.Errorf("catalog: the registry record of %s is unreadable: %w", subject, err)
	}
	if rec := v.(codecs.Enrolment); !found || rec.Revision > cur.Revision {
		r.Roster.Remember(rec)
		return rec, true, nil
	}
	return cur, found, nil
}

// Enrol enrols e.SubjectID as e says unless it is enrolled already: exactly
// so (Unchanged) or otherwise (Conflict).
func (r Registrar) Enrol(ctx context.Context, e codecs.Enrolment) (Outcome, error) {
	_, _, out, err := r.Change(ctx, e.SubjectID, func(cur codecs.Enrolment, found bool) (codecs.Enrolment, bool) {
		if !found {
			return e, true
		}
		return cur, cur.StudyID == e.StudyID && cur.SiteID == e.SiteID && cur.Active()
	})
	return out, err
}

// WaitRecovered returns once r has caught up with Kafka, or after limit.
func WaitRecovered(ctx context.Context, r *Roster, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !r.Recovered() {
		if time.Now().After(deadline) {
			return fmt.Errorf("catalog: the roster did not catch up with Kafka within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
