package chsink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/eprostream/eprostream/internal/logging"
)

// Table is a destination table.
type Table struct {
	Name    string   // table name, without database
	Columns []string // insert column list, in Row.Values order
	// TopicColumn, PartitionColumn and OffsetColumn hold each row's source;
	// the sink reads the highest offset per partition from them. TopicColumn
	// may be empty when the table only ever holds one topic.
	TopicColumn, PartitionColumn, OffsetColumn string
	// TopicIDColumn, when set, holds the Kafka ID of the row's topic, and
	// the highest offset is read for that topic ID only: a topic deleted and
	// created again under its name starts its offsets anew, and its rows
	// must not be skipped as if they were the old topic's.
	TopicIDColumn string
	// IDTable and IDColumn, when set, index the rows' ids for deduplication.
	IDTable, IDColumn string
}

// Row is one row and where it was read.
type Row struct {
	Values    []any
	Topic     string
	TopicID   string // the topic's Kafka ID, when the table has a TopicIDColumn
	Partition int32
	Offset    int64
	ID        string // "" when the table has no id index
	Key       string // the source record's key, for a dead letter
}

// Config bounds the sink.
type Config struct {
	Database    string        // the warehouse's database; required
	MaxRows     int           // rows per insert (default 50,000)
	MaxDelay    time.Duration // oldest row's age before a lane is inserted (default 1 s)
	MaxInflight int           // concurrent inserts (default 4)
	MaxBuffered int           // rows waiting in all lanes before Add blocks (default 200,000)
	RetryMin    time.Duration // first retry delay (default 200 ms)
	RetryMax    time.Duration // longest retry delay (default 10 s)
}

func (c *Config) setDefaults() {
	if c.MaxRows <= 0 {
		c.MaxRows = 50_000
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 4
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = 200_000
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 200 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
}

// Validate says what is wrong with c (after defaults), every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Database == "" {
		errs = append(errs, errors.New("Database is required"))
	}
	if c.MaxBuffered < c.MaxRows {
		errs = append(errs, fmt.Errorf("MaxBuffered (%d) is below MaxRows (%d): a batch could never fill", c.MaxBuffered, c.MaxRows))
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("RetryMax (%s) is below RetryMin (%s)", c.RetryMax, c.RetryMin))
	}
	if len(errs) > 0 {
		return fmt.Errorf("chsink: config: %w", errors.Join(errs...))
	}
	return nil
}

// Deps are the sink's collaborators.
type Deps struct {
	Conn driver.Conn // required
	// Reject dead-letters a row the client cannot encode; nil: such a row
	// fails its insert like any other error.
	Reject   RejectFunc
	Log      *slog.Logger          // nil discards
	Registry prometheus.Registerer // nil: metrics not registered
}

// RejectFunc dead-letters a row the client cannot encode; the row's commit
// follows its result.
type RejectFunc func(ctx context.Context, row Row, reason error) error

// ErrClosed is passed to commit callbacks of rows still buffered when the
// sink stops without being able to insert them; they will be read again.
var ErrClosed = errors.New("chsink: stopped before the rows were inserted")

// ErrRevoked is passed to commit callbacks of rows of a partition the group
// no longer holds (Reassigned); the partition's new owner reads them again.
var ErrRevoked = errors.New("chsink: the partition was revoked before the rows were inserted")

// Sink is safe for concurrent use.
type Sink struct {
	conn     driver.Conn
	database string
	cfg      Config
	reject   RejectFunc
	log      *slog.Logger
	inflight *semaphore.Weighted
	room     *semaphore.Weighted // one unit per buffered row
	m        metrics

	// sole: the last Reassigned said this instance holds every partition of
	// its sources, so nobody else writes its tables and the id filters may
	// be trusted.
	sole atomic.Bool

	mu      sync.Mutex
	lanes   map[laneKey]*lane
	filters map[string]*idFilter // by table name
}

type laneKey struct {
	table     string
	topic     string
	topicID   string
	partition int32
}

// New returns a sink writing to cfg.Database over deps.Conn; cfg's unset
// fields get their defaults.
func New(cfg Config, deps Deps) (*Sink, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Conn == nil {
		return nil, errors.New("chsink: Deps.Conn is required")
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	return &Sink{conn: deps.Conn, database: cfg.Database, cfg: cfg, reject: deps.Reject, log: logging.OrDiscard(deps.Log),
		inflight: semaphore.NewWeighted(int64(cfg.MaxInflight)), room: semaphore.NewWeighted(int64(cfg.MaxBuffered)),
		m: m, lanes: map[laneKey]*lane{}, filters: map[string]*idFilter{}}, nil
}

// Add buffers row for table; commit is called once the row is in
// ClickHouse, was found there already, or was dead-lettered (nil), or when
// the sink stopped first (ErrClosed). Add blocks while MaxBuffered rows wait.
func (s *Sink) Add(ctx context.Context, t *Table, row Row, commit func(error)) error {
	if !s.room.TryAcquire(1) {
		// Full: insert the largest lane now rather than wait for its timer.
		if l := s.largest(); l != nil {
			s.flush(ctx, l)
		}
		if err := s.room.Acquire(ctx, 1); err != nil {
			return fmt.Errorf("chsink: %w", err)
		}
	}
	s.m.buffered.Inc()
	l := s.lane(t, row)
	if full := l.add(row, commit, s.cfg.MaxRows); full {
		s.flush(ctx, l)
	}
	return nil
}

func (s *Sink) lane(t *Table, row Row) *lane {
	k := laneKey{t.Name, row.Topic, row.TopicID, row.Partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lanes[k]
	if !ok {
		l = &lane{table: t, topic: row.Topic, topicID: row.TopicID, partition: row.Partition, maxOffset: -1}
		s.lanes[k] = l
	}
	return l
}

// Reassigned tells the sink which partitions its group holds after a
// rebalance. Another instance may have inserted rows of a held partition
// while it was away, so every held lane reads its highest stored offset
// from ClickHouse again before its next insert. A lane of a partition no
// longer held is revoked: what it buffered is failed with ErrRevoked (the
// partition's new owner reads it again), and an insert of it that is
// retrying gives up at its next attempt, so two instances do not insert one
// partition side by side. The lane itself stays: if the partition comes
// back, its next insert waits for one of the old assignment still under
// way, then reads the stored offset again.
//
// all says that partitions are every partition of every topic the sink's
// rows come from, so no other instance writes its tables: the sink then
// trusts its id filters (loaded again now, since another instance may have
// written meanwhile) and looks up only the ids they may hold; otherwise it
// looks every id up.
func (s *Sink) Reassigned(partitions []int32, all bool) {
	held := make(map[int32]bool, len(partitions))
	for _, p := range partitions {
		held[p] = true
	}
	s.log.Info("clickhouse sink partitions reassigned", "partitions", len(partitions), "only_writer", all)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Stale before sole: an insert that sees the new sole sees the filter
	// stale, and loads it once the inserts under way have ended.
	for _, f := range s.filters {
		f.stale.Store(true)
	}
	s.sole.Store(all)
	for _, l := range s.lanes {
		l.stale.Store(true)
		if held[l.partition] {
			l.revoked.Store(false)
			continue
		}
		l.revoked.Store(true)
		if l.flushing.TryLock() { // else the running insert fails them
			rows, commits := l.take()
			l.flushing.Unlock()
			s.fail(rows, commits, ErrRevoked)
		}
	}
}

func (s *Sink) fail(rows []Row, commits []func(error), err error) {
	s.release(len(rows))
	for _, c := range commits {
		c(err)
	}
}

// Run inserts lanes whose oldest row is MaxDelay old, until ctx ends; then
// it inserts what is left (for up to 30 s) and fails the rest with ErrClosed.
func (s *Sink) Run(ctx context.Context) error {
	tick := time.NewTicker(max(s.cfg.MaxDelay/4, 10*time.Millisecond))
	defer tick.Stop()
	var wg sync.WaitGroup
	ticking := map[string]*atomic.Bool{} // by table: a round of its due lanes is inserting
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			s.drain()
			return nil
		case <-tick.C:
			// One insert per table at a time from here: it takes the
			// table's other lanes too (flush), so an insert per due lane
			// would only race for them and send many small batches.
			byTable := map[string][]*lane{}
			for _, l := range s.due(s.cfg.MaxDelay) {
				if !l.flushing.TryLock() {
					continue // an insert of this lane is under way
				}
				l.flushing.Unlock()
				byTable[l.table.Name] = append(byTable[l.table.Name], l)
			}
			for name, lanes := range byTable {
				busy := ticking[name]
				if busy == nil {
					busy = &atomic.Bool{}
					ticking[name] = busy
				}
				if !busy.CompareAndSwap(false, true) {
					continue // this table's previous round is still inserting
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer busy.Store(false)
					s.flushDue(ctx, lanes)
				}()
			}
		}
	}
}

// flushDue inserts lanes (the oldest first) that are still due: an insert
// takes other lanes along, and what they got since is young, so it waits
// for its own turn instead of going out as a small insert right after.
func (s *Sink) flushDue(ctx context.Context, lanes []*lane) {
	for _, l := range lanes {
		if l.age() >= s.cfg.MaxDelay {
			s.flush(ctx, l)
		}
	}
}

// largest returns the lane holding the most rows, or nil.
func (s *Sink) largest() *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *lane
	most := 0
	for _, l := range s.lanes {
		if n := l.size(); n > most {
			best, most = l, n
		}
	}
	return best
}

// due returns the lanes whose oldest row is at least age old, the oldest
// first.
func (s *Sink) due(age time.Duration) []*lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*lane
	ages := map[*lane]time.Duration{}
	for _, l := range s.lanes {
		if a := l.age(); a >= age {
			out = append(out, l)
			ages[l] = a
		}
	}
	slices.SortFunc(out, func(a, b *lane) int { return cmp.Compare(ages[b], ages[a]) })
	return out
}

// drain inserts every lane once more with a fresh deadline, then fails what
// could not be inserted.
func (s *Sink) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, l := range s.due(0) {
		s.flush(ctx, l)
	}
	for _, l := range s.due(0) {
		rows, commits := l.take()
		s.fail(rows, commits, ErrClosed)
	}
}

func (s *Sink) release(n int) {
	if n > 0 {
		s.room.Release(int64(n))
		s.m.buffered.Sub(float64(n))
	}
}
