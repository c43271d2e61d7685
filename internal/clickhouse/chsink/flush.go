package chsink

import (
	"context"
	"fmt"
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

// flush inserts what lane l holds, retrying until it succeeds or ctx ends;
// then the rows go back to the lane for the final drain.
func (s *Sink) flush(ctx context.Context, l *lane) {
	l.flushing.Lock()
	defer l.flushing.Unlock()
	rows, commits := l.take()
	if len(rows) == 0 {
		return
	}
	backoff := s.cfg.RetryMin
	for {
		if l.revoked.Load() {
			s.fail(rows, commits, ErrRevoked)
			return
		}
		// An attempt under way is not cut short when ctx ends (a stop):
		// cancelled mid-send, its rows could be stored with the answer
		// lost. It gets attemptTimeout instead; ctx is checked between
		// attempts.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		err := s.insert(actx, l, rows, commits)
		cancel()
		if err == nil {
			s.release(len(rows))
			return
		}
		// The insert's outcome is unknown: the server may have stored the
		// rows and the answer been lost (or cancelled). The next attempt,
		// this one's retry or the final drain, reads the highest stored
		// offset from the table again; the id index alone cannot tell, as
		// ClickHouse fills it through a materialized view, not atomically
		// with the table.
		l.stale.Store(true)
		if ctx.Err() != nil {
			l.putBack(rows, commits)
			return
		}
		s.m.retries.WithLabelValues(l.table.Name).Inc()
		s.log.Warn("clickhouse insert failed; retrying", "table", l.table.Name, "topic", l.topic,
			"partition", l.partition, "rows", len(rows), "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			l.putBack(rows, commits)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
}

// insert writes the rows that are not in the table yet and calls every
// commit once they are durable.
func (s *Sink) insert(ctx context.Context, l *lane, rows []Row, commits []func(error)) error {
	if err := s.loadMaxOffset(ctx, l); err != nil {
		return err
	}
	f, trusted := s.holdFilter(ctx, l.table)
	if f != nil {
		defer f.use.RUnlock()
	}
	if !trusted {
		f = nil
	}
	fresh, err := s.fresh(ctx, l, rows, f)
	if err != nil {
		return err
	}
	s.log.Debug("clickhouse insert", "table", l.table.Name, "topic", l.topic, "partition", l.partition,
		"rows", len(rows), "fresh", len(fresh), "stored_max_offset", l.maxOffset,
		"first_offset", rows[0].Offset, "last_offset", rows[len(rows)-1].Offset)
	rejected := map[int]bool{}
	if len(fresh) > 0 {
		if err := s.inflight.Acquire(ctx, 1); err != nil {
			return err
		}
		start := time.Now()
		err := s.send(ctx, l.table, rows, fresh, rejected)
		s.inflight.Release(1)
		if err != nil {
			return err
		}
		s.m.insertSeconds.WithLabelValues(l.table.Name).Observe(time.Since(start).Seconds())
	}
	s.m.inserted.WithLabelValues(l.table.Name).Add(float64(len(fresh) - len(rejected)))
	s.m.duplicates.WithLabelValues(l.table.Name).Add(float64(len(rows) - len(fresh)))
	l.maxOffset = max(l.maxOffset, rows[len(rows)-1].Offset)
	for _, c := range commits {
		c(nil)
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

// fresh returns the indexes of rows that are past the lane's highest stored
// offset, not repeated earlier in rows, and whose id is not stored yet. With
// a trusted filter f only the ids f may hold are looked up, and the fresh
// ids are added to f before they are sent (an attempt whose outcome is
// unknown may have stored them).
func (s *Sink) fresh(ctx context.Context, l *lane, rows []Row, f *idFilter) ([]int, error) {
	var idx []int
	seen := map[string]bool{}
	for i, r := range rows {
		if r.Offset <= l.maxOffset {
			continue
		}
		if r.ID != "" {
			if seen[r.ID] {
				continue
			}
			seen[r.ID] = true
		}
		idx = append(idx, i)
	}
	if l.table.IDTable == "" || len(idx) == 0 {
		return idx, nil
	}
	lookup := idx
	if f != nil {
		lookup = f.maybeStored(rows, idx)
	}
	stored := map[string]bool{}
	if len(lookup) > 0 {
		var err error
		if stored, err = s.storedIDs(ctx, l.table, rows, lookup); err != nil {
			return nil, err
		}
	}
	s.m.lookedUp.WithLabelValues(l.table.Name).Add(float64(len(lookup)))
	out := idx[:0]
	for _, i := range idx {
		if !stored[rows[i].ID] {
			out = append(out, i)
		}
	}
	if f != nil {
		f.add(rows, out)
	}
	return out, nil
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
