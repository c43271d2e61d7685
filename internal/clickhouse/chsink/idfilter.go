package chsink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

const (
	// filterFalsePositive is the share of new ids an idFilter still sends
	// to a lookup; about 14.4 bits per id.
	filterFalsePositive = 0.001
	// filterMinCapacity is the fewest ids a filter is sized for; a filter
	// is sized for twice the ids it loads and loaded again when full.
	filterMinCapacity = 1 << 18
	// filterLoadTimeout bounds one load; a load that fails leaves the
	// table to id lookups for filterRetry.
	filterLoadTimeout = 2 * time.Minute
	filterRetry       = time.Minute
)

// idFilter spares the sink most id lookups while it is the only writer of
// a table. It holds, in a Bloom filter, every id of the table's id index as
// of its load and every id the sink has sent into the table since: an id
// the filter does not hold is certainly not in the table, so it is not
// looked up; an id it holds may be, and is looked up as before. That holds
// only while nobody else writes the table, so the sink uses a filter only
// while Reassigned says this instance holds every partition of its
// sources, and every Reassigned makes the filter load again.
type idFilter struct {
	// use is held shared by an insert from its check until its send has
	// ended, and alone by a load, so a load never misses the ids of an
	// insert under way.
	use sync.RWMutex
	// stale asks for a load before the next use (Reassigned, or full).
	stale  atomic.Bool
	loaded bool      // guarded by use
	failed time.Time // last failed load; guarded by use

	mu       sync.Mutex // guards bloom and added
	bloom    *bloom.BloomFilter
	capacity uint
	added    uint
}

// filter returns t's filter, nil when t has no id index.
func (s *Sink) filter(t *Table) *idFilter {
	if t.IDTable == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.filters[t.Name]
	if !ok {
		f = &idFilter{}
		s.filters[t.Name] = f
	}
	return f
}

// holdFilter returns t's filter held shared (the caller releases f.use),
// nil when t has no id index, and whether the insert may trust it: false
// when the instance may not be the only writer, or the filter could not be
// loaded lately; then every id is looked up. An insert holds the filter
// whether it trusts it or not, so a load waits for every send under way.
func (s *Sink) holdFilter(ctx context.Context, t *Table) (*idFilter, bool) {
	f := s.filter(t)
	if f == nil {
		return nil, false
	}
	for {
		f.use.RLock()
		if !s.sole.Load() {
			return f, false
		}
		if f.loaded && !f.stale.Load() {
			return f, true
		}
		f.use.RUnlock()
		f.use.Lock()
		if !s.sole.Load() || (f.loaded && !f.stale.Load()) {
			f.use.Unlock()
			continue
		}
		if time.Since(f.failed) < filterRetry {
			f.use.Unlock()
			f.use.RLock()
			return f, false
		}
		f.stale.Store(false)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), filterLoadTimeout)
		err := s.loadFilter(lctx, t, f)
		cancel()
		f.loaded = err == nil
		f.failed = time.Time{}
		if err != nil {
			f.failed = time.Now()
			s.log.Warn("clickhouse id filter not loaded; looking every id up", "table", t.Name,
				"retry_in", filterRetry, "err", err)
		}
		f.use.Unlock()
	}
}

// loadFilter fills f with every id of t's id index (f.use held alone).
func (s *Sink) loadFilter(ctx context.Context, t *Table, f *idFilter) error {
	start := time.Now()
	var n uint64
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM `%s`.`%s`", s.database, t.IDTable)).Scan(&n); err != nil {
		return fmt.Errorf("chsink: count the ids of %s: %w", t.IDTable, err)
	}
	capacity := max(2*uint(n), filterMinCapacity)
	b := bloom.NewWithEstimates(capacity, filterFalsePositive)
	res, err := s.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM `%s`.`%s`", t.IDColumn, s.database, t.IDTable))
	if err != nil {
		return fmt.Errorf("chsink: read the ids of %s: %w", t.IDTable, err)
	}
	defer res.Close()
	var added uint
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return fmt.Errorf("chsink: read the ids of %s: %w", t.IDTable, err)
		}
		b.AddString(id)
		added++
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("chsink: read the ids of %s: %w", t.IDTable, err)
	}
	f.mu.Lock()
	f.bloom, f.capacity, f.added = b, capacity, added
	f.mu.Unlock()
	s.m.filterLoads.WithLabelValues(t.Name).Inc()
	s.log.Info("clickhouse id filter loaded", "table", t.Name, "ids", added, "capacity", capacity,
		"bytes", b.Cap()/8, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// maybeStored returns those of idx whose id f may hold.
func (f *idFilter) maybeStored(rows []Row, idx []int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, i := range idx {
		if f.bloom.TestString(rows[i].ID) {
			out = append(out, i)
		}
	}
	return out
}

// add records the ids of rows[idx], which are about to be sent; a full
// filter asks for a load before its next use.
func (f *idFilter) add(rows []Row, idx []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range idx {
		f.bloom.AddString(rows[i].ID)
	}
	f.added += uint(len(idx))
	if f.added > f.capacity {
		f.stale.Store(true)
	}
}
