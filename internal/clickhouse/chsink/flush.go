package chsink

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// idLookupChunk ids go into one lookup; with ids of up to 128 characters the
// query stays under lookupQuerySize, which each lookup sets as its
// max_query_size (the server's default is 256 KiB).
const (
	idLookupChunk   = 20_000
	lookupQuerySize = 3 << 20
)

// attemptTimeout bounds one insert attempt (its offset read, id lookups
// and send).
const attemptTimeout = 30 * time.Second

// part is one lane's rows in an insert.
type part struct {
	l       *lane
	rows    []Row
	commits []func(error)
}

// flush inserts what lane l holds, retrying until it succeeds or ctx ends;
// then the rows go back to their lanes for the final drain. One partition's
// lane seldom fills a batch by itself, and ClickHouse takes a few large
// inserts much faster than many small ones, so the insert also takes the
// rows of the table's other lanes that no insert is using, up to MaxRows
// in all. Each lane taken stays locked until the insert ends, so every
// partition's batches still reach ClickHouse one at a time, in offset order.
func (s *Sink) flush(ctx context.Context, l *lane) {
	l.flushing.Lock()
	held := []*lane{l}
	defer func() {
		for _, h := range held {
			h.flushing.Unlock()
		}
	}()
	first := &part{l: l}
	first.rows, first.commits = l.take()
	if len(first.rows) == 0 {
		return
	}
	parts := []*part{first}
	n := len(first.rows)
	for _, o := range s.joinable(l) {
		if n >= s.cfg.MaxRows {
			break
		}
		if !o.flushing.TryLock() {
			continue // an insert of that lane is under way
		}
		held = append(held, o)
		p := &part{l: o}
		p.rows, p.commits = o.takeUpTo(s.cfg.MaxRows - n)
		if len(p.rows) > 0 {
			parts = append(parts, p)
			n += len(p.rows)
		}
	}
	backoff := s.cfg.RetryMin
	for {
		kept := parts[:0]
		for _, p := range parts {
			if p.l.revoked.Load() {
				s.fail(p.rows, p.commits, ErrRevoked)
				continue
			}
			kept = append(kept, p)
		}
		if parts = kept; len(parts) == 0 {
			return
		}
		// An attempt under way is not cut short when ctx ends (a stop):
		// cancelled mid-send, its rows could be stored with the answer
		// lost. It gets attemptTimeout instead; ctx is checked between
		// attempts.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		err := s.insert(actx, l.table, parts)
		cancel()
		if err == nil {
			for _, p := range parts {
				s.release(len(p.rows))
			}
			return
		}
		// The insert's outcome is unknown: the server may have stored the
		// rows and the answer been lost (or cancelled). The next attempt,
		// this one's retry or the final drain, reads the highest stored
		// offset of every partition in it from the table again; the id
		// index alone cannot tell, as ClickHouse fills it through a
		// materialized view, not atomically with the table.
		rows := 0
		partitions := make([]int32, 0, len(parts))
		for _, p := range parts {
			p.l.stale.Store(true)
			rows += len(p.rows)
			partitions = append(partitions, p.l.partition)
		}
		if ctx.Err() != nil {
			putBack(parts)
			return
		}
		s.m.retries.WithLabelValues(l.table.Name).Inc()
		s.log.Warn("clickhouse insert failed; retrying", "table", l.table.Name, "topic", l.topic,
			"partitions", partitions, "rows", rows, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			putBack(parts)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
}

func putBack(parts []*part) {
	for _, p := range parts {
		p.l.putBack(p.rows, p.commits)
	}
}

// joinable returns the lanes of l's table other than l that hold rows, the
// fullest first.
func (s *Sink) joinable(l *lane) []*lane {
	var out []*lane
	sizes := map[*lane]int{}
	s.mu.Lock()
	for _, o := range s.lanes {
		if o != l && o.table.Name == l.table.Name && !o.revoked.Load() {
			if n := o.size(); n > 0 {
				out = append(out, o)
				sizes[o] = n
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *lane) int { return sizes[b] - sizes[a] })
	return out
}

// insert writes the parts' rows that are not in table t yet, as one batch,
// and calls every commit once they are durable.
func (s *Sink) insert(ctx context.Context, t *Table, parts []*part) error {
	for _, p := range parts {
		if err := s.loadMaxOffset(ctx, p.l); err != nil {
			return err
		}
	}
	f, trusted := s.holdFilter(ctx, t)
	if f != nil {
		defer f.use.RUnlock()
	}
	if !trusted {
		f = nil
	}
	rows, fresh, err := s.fresh(ctx, t, parts, f)
	if err != nil {
		return err
	}
	s.log.Debug("clickhouse insert", "table", t.Name, "partitions", len(parts), "rows", len(rows), "fresh", len(fresh))
	rejected := map[int]bool{}
	if len(fresh) > 0 {
		if err := s.inflight.Acquire(ctx, 1); err != nil {
			return err
		}
		start := time.Now()
		err := s.send(ctx, t, rows, fresh, rejected)
		s.inflight.Release(1)
		if err != nil {
			return err
		}
		s.m.insertSeconds.WithLabelValues(t.Name).Observe(time.Since(start).Seconds())
	}
	s.m.inserted.WithLabelValues(t.Name).Add(float64(len(fresh) - len(rejected)))
	s.m.duplicates.WithLabelValues(t.Name).Add(float64(len(rows) - len(fresh)))
	for _, p := range parts {
		p.l.maxOffset = max(p.l.maxOffset, p.rows[len(p.rows)-1].Offset)
		for _, c := range p.commits {
			c(nil)
		}
	}
	return nil
}

// send inserts rows[i] for i in fresh as one batch. A row the client cannot
// encode is rejected (dead-lettered) and the batch is built again without it.
func (s *Sink) send(ctx context.Context, t *Table, rows []Row, fresh []int, rejected map[int]bool) error {
	for {
		batch, err := s.conn.PrepareBatch(ctx, s.insertSQL(t))
		if err != nil {
			return fmt.Errorf("chsink: prepare batch %s: %w", t.Name, err)
		}
		bad := -1
		for _, i := range fresh {
			if rejected[i] {
				continue
			}
			if err := batch.Append(rows[i].Values...); err != nil {
				bad = i
				if s.reject == nil {
					_ = batch.Abort()
					return fmt.Errorf("chsink: %s refuses a row and nothing dead-letters it: %w", t.Name, err)
				}
				if rerr := s.reject(ctx, rows[i], fmt.Errorf("chsink: %s refuses the row: %w", t.Name, err)); rerr != nil {
					_ = batch.Abort()
					return fmt.Errorf("chsink: dead-letter a refused row: %w", rerr)
				}
				break
			}
		}
		if bad >= 0 {
			_ = batch.Abort()
			rejected[bad] = true
			s.m.rejected.WithLabelValues(t.Name).Inc()
			continue
		}
		if len(rejected) == len(fresh) {
			return batch.Abort()
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("chsink: insert into %s: %w", t.Name, err)
		}
		return nil
	}
}

func (s *Sink) insertSQL(t *Table) string {
	cols := ""
	for i, c := range t.Columns {
		if i > 0 {
			cols += ", "
		}
		cols += c
	}
	return fmt.Sprintf("INSERT INTO `%s`.`%s` (%s)", s.database, t.Name, cols)
}

// loadMaxOffset reads the highest offset of the lane's partition already in
// the table: once per lane, and again after the partitions were reassigned.
func (s *Sink) loadMaxOffset(ctx context.Context, l *lane) error {
	stale := l.stale.Swap(false) // a Reassigned during the query sets it again
	if l.loaded && !stale {
		return nil
	}
	t := l.table
	q := fmt.Sprintf("SELECT max(%s), count() FROM `%s`.`%s` WHERE %s = ?",
		t.OffsetColumn, s.database, t.Name, t.PartitionColumn)
	args := []any{uint16(l.partition)}
	if t.TopicColumn != "" {
		q += " AND " + t.TopicColumn + " = ?"
		args = append(args, l.topic)
	}
	if t.TopicIDColumn != "" {
		q += " AND " + t.TopicIDColumn + " = ?"
		args = append(args, l.topicID)
	}
	var maxOffset, n uint64
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&maxOffset, &n); err != nil {
		if stale {
			l.stale.Store(true) // read it again on the retry
		}
		return fmt.Errorf("chsink: read the highest offset of %s/%d in %s: %w", l.topic, l.partition, t.Name, err)
	}
	if n > 0 {
		l.maxOffset = int64(maxOffset)
	}
	l.loaded = true
	return nil
}

// fresh returns the parts' rows in one slice and the indexes of those that
// are past their lane's highest stored offset, not repeated earlier in the
// insert, and whose id is not stored yet. With a trusted filter f only the
// ids f may hold are looked up, and the fresh ids are added to f before
// they are sent (an attempt whose outcome is unknown may have stored them).
func (s *Sink) fresh(ctx context.Context, t *Table, parts []*part, f *idFilter) ([]Row, []int, error) {
	var rows []Row
	if len(parts) == 1 {
		rows = parts[0].rows
	} else {
		n := 0
		for _, p := range parts {
			n += len(p.rows)
		}
		rows = make([]Row, 0, n)
		for _, p := range parts {
			rows = append(rows, p.rows...)
		}
	}
	var idx []int
	seen := map[string]bool{}
	i := 0
	for _, p := range parts {
		for _, r := range p.rows {
			if r.Offset > p.l.maxOffset && (r.ID == "" || !seen[r.ID]) {
				if r.ID != "" {
					seen[r.ID] = true
				}
				idx = append(idx, i)
			}
			i++
		}
	}
	if t.IDTable == "" || len(idx) == 0 {
		return rows, idx, nil
	}
	lookup := idx
	if f != nil {
		lookup = f.maybeStored(rows, idx)
	}
	stored := map[string]bool{}
	if len(lookup) > 0 {
		var err error
		if stored, err = s.storedIDs(ctx, t, rows, lookup); err != nil {
			return nil, nil, err
		}
	}
	s.m.lookedUp.WithLabelValues(t.Name).Add(float64(len(lookup)))
	out := idx[:0]
	for _, i := range idx {
		if !stored[rows[i].ID] {
			out = append(out, i)
		}
	}
	if f != nil {
		f.add(rows, out)
	}
	return rows, out, nil
}

func (s *Sink) storedIDs(ctx context.Context, t *Table, rows []Row, idx []int) (map[string]bool, error) {
	stored := map[string]bool{}
	// GroupSet renders ('a', 'b', …): 18.16 refuses an array on the right of IN.
	q := fmt.Sprintf("SELECT %s FROM `%s`.`%s` WHERE %s IN ?", t.IDColumn, s.database, t.IDTable, t.IDColumn)
	for start := 0; start < len(idx); start += idLookupChunk {
		chunk := idx[start:min(len(idx), start+idLookupChunk)]
		ids := make([]any, len(chunk))
		for j, i := range chunk {
			ids[j] = rows[i].ID
		}
		qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_query_size": lookupQuerySize}))
		res, err := s.conn.Query(qctx, q, clickhouse.GroupSet{Value: ids})
		if err != nil {
			return nil, fmt.Errorf("chsink: look up ids in %s: %w", t.IDTable, err)
		}
		for res.Next() {
			var id string
			if err := res.Scan(&id); err != nil {
				res.Close()
				return nil, fmt.Errorf("chsink: look up ids in %s: %w", t.IDTable, err)
			}
			stored[id] = true
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("chsink: look up ids in %s: %w", t.IDTable, err)
		}
	}
	return stored, nil
}
