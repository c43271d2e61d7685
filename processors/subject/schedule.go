package subject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bsm/redislock"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/rules"
)

// CommandSender sends a command to epro-commands; emitters.CommandEmitter is one.
type CommandSender interface {
	Emit(ctx context.Context, c codecs.Command) error
}

// Roster is the part of the registry's roster the sweep reads;
// *catalog.Roster is one.
type Roster interface {
	Enrolment(subject string) (codecs.Enrolment, bool, error)
	Each(fn func(codecs.Enrolment) bool) error
}

// ScheduleConfig tunes a Scheduler.
type ScheduleConfig struct {
	LockKey  string        // required, e.g. eprostream:{env}:lock:schedule
	Interval time.Duration // between sweeps; default one minute
}

func (c *ScheduleConfig) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
}

// Validate says what is wrong with c (after defaults).
func (c ScheduleConfig) Validate() error {
	if c.LockKey == "" {
		return errors.New("subject: schedule: LockKey is required")
	}
	return nil
}

// ScheduleDeps are a Scheduler's collaborators.
type ScheduleDeps struct {
	View   *goka.View // of subject-table, with StateCodec; required
	Sender CommandSender
	Locker *redislock.Client
	Rules  *rules.Registry // nil: the default rule set
	// Roster, when set, is the study registry's roster: subjects enrolled
	// and never reported are swept from their enrolment on, and subjects
	// that are no longer active are not swept.
	Roster Roster
	Log    *slog.Logger     // nil discards
	Now    func() time.Time // time.Now when nil
}

// Scheduler drives the time-driven rules: see the package documentation.
type Scheduler struct {
	cfg  ScheduleConfig
	deps ScheduleDeps
}

// NewScheduler returns a Scheduler; cfg's unset fields get their defaults.
func NewScheduler(cfg ScheduleConfig, deps ScheduleDeps) (*Scheduler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.View == nil || deps.Sender == nil || deps.Locker == nil {
		return nil, errors.New("subject: schedule: View, Sender and Locker are required")
	}
	if deps.Rules == nil {
		deps.Rules = rules.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	deps.Log = logging.OrDiscard(deps.Log)
	return &Scheduler{cfg: cfg, deps: deps}, nil
}

// View is the subject-table view the Scheduler sweeps.
func (s *Scheduler) View() *goka.View { return s.deps.View }

// Run runs the view and sweeps every Interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.deps.View.Run(ctx) }()
	// A roster that keeps itself current (*catalog.Roster) runs beside the view.
	runner, runs := s.deps.Roster.(interface{ Run(context.Context) error })
	if runs {
		go func() { errc <- runner.Run(ctx) }()
	}
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("subject: schedule view: %w", err)
			}
			return nil
		case <-tick.C:
			if !s.deps.View.Recovered() {
				continue
			}
			if r, ok := s.deps.Roster.(interface{ Recovered() bool }); ok && !r.Recovered() {
				continue
			}
			n, err := s.Sweep(ctx)
			if err != nil {
				s.deps.Log.Warn("schedule sweep failed; next interval retries", "err", err)
			} else if n > 0 {
				s.deps.Log.Info("schedule sweep", "checks_sent", n)
			}
		}
	}
}

// Sweep sends a check_schedule command for every silent subject, if this
// instance obtains the lock; it returns how many it sent.
func (s *Scheduler) Sweep(ctx context.Context) (int, error) {
	lock, err := s.deps.Locker.Obtain(ctx, s.cfg.LockKey, s.cfg.Interval, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return 0, nil // another instance sweeps this interval
	}
	if err != nil {
		return 0, fmt.Errorf("subject: schedule lock: %w", err)
	}
	// The lock is kept until it expires at the end of the interval: one sweep
	// per interval across all instances. It is released early only on failure,
	// so another instance can retry.
	release := func() { _ = lock.Release(context.WithoutCancel(ctx)) }
	now := s.deps.Now().UTC()
	slot := now.Truncate(s.cfg.Interval).Unix()
	it, err := s.deps.View.Iterator()
	if err != nil {
		release()
		return 0, fmt.Errorf("subject: schedule iterate: %w", err)
	}
	defer it.Release()
	sent := 0
	for it.Next() {
		v, err := it.Value()
		st, ok := v.(codecs.SubjectState)
		if err != nil || !ok || st.LastAt == 0 {
			continue
		}
		limit := s.deps.Rules.For(st.StudyID).SilenceLimit()
		if limit == 0 || now.Sub(codecs.Unix(st.LastAt)) <= limit {
			continue
		}
		if s.deps.Roster != nil {
			if e, found, err := s.deps.Roster.Enrolment(it.Key()); err == nil && found && !e.Active() {
				continue // withdrawn or completed: silence is expected
			}
		}
		cmd := codecs.Command{
			CommandID: fmt.Sprintf("schedule:%d", slot), Kind: codecs.CommandCheckSchedule,
			StudyID: st.StudyID, SubjectID: it.Key(), At: now, By: "scheduler",
		}
		if err := s.deps.Sender.Emit(ctx, cmd); err != nil {
			release()
			return sent, fmt.Errorf("subject: schedule emit: %w", err)
		}
		sent++
	}
	if err := it.Err(); err != nil {
		return sent, err
	}
	n, err := s.sweepNeverReported(ctx, now, slot)
	if err != nil {
		release()
	}
	return sent + n, err
}

// sweepNeverReported sends a check_schedule, carrying the enrolment, for
// every active enrolled subject that has no state yet (it never reported)
// and has been silent since enrolment for longer than its study allows.
func (s *Scheduler) sweepNeverReported(ctx context.Context, now time.Time, slot int64) (int, error) {
	if s.deps.Roster == nil {
		return 0, nil
	}
	if r, ok := s.deps.Roster.(interface{ Recovered() bool }); ok && !r.Recovered() {
		return 0, nil // not caught up (or not running): next interval
	}
	var due []codecs.Enrolment
	err := s.deps.Roster.Each(func(e codecs.Enrolment) bool {
		limit := s.deps.Rules.For(e.StudyID).SilenceLimit()
		if !e.Active() || limit == 0 || now.Sub(e.EnrolledAt) <= limit {
			return true
		}
		if v, err := s.deps.View.Get(e.SubjectID); err == nil && v == nil {
			due = append(due, e)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("subject: schedule roster: %w", err)
	}
	for i, e := range due {
		at := e.EnrolledAt
		cmd := codecs.Command{CommandID: fmt.Sprintf("schedule:%d", slot), Kind: codecs.CommandCheckSchedule,
			StudyID: e.StudyID, SiteID: e.SiteID, SubjectID: e.SubjectID, At: now, By: "scheduler", EnrolledAt: &at}
		if err := s.deps.Sender.Emit(ctx, cmd); err != nil {
			return i, fmt.Errorf("subject: schedule emit: %w", err)
		}
	}
	return len(due), nil
}
