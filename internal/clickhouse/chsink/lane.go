package chsink

import (
	"sync"
	"sync/atomic"
	"time"
)

// lane is the buffer of one source partition for one table.
type lane struct {
	table     *Table
	topic     string
	topicID   string
	partition int32

	// flushing serialises inserts, so batches reach ClickHouse in offset order.
	flushing sync.Mutex
	// maxOffset is the highest offset of this partition in the table; -1
	// until loaded (guarded by flushing).
	maxOffset int64
	loaded    bool
	// stale asks the next insert to read maxOffset again (Reassigned).
	stale atomic.Bool
	// revoked: the group no longer holds the partition (Reassigned); the
	// lane's inserts fail their rows with ErrRevoked until it comes back.
	revoked atomic.Bool

	mu      sync.Mutex
	rows    []Row
	commits []func(error)
	oldest  time.Time
}

// add buffers a row and reports whether the lane is full.
func (l *lane) add(row Row, commit func(error), maxRows int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rows) == 0 {
		l.oldest = time.Now()
	}
	l.rows = append(l.rows, row)
	l.commits = append(l.commits, commit)
	return len(l.rows) >= maxRows
}

// take empties the buffer.
func (l *lane) take() ([]Row, []func(error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, commits := l.rows, l.commits
	l.rows, l.commits = nil, nil
	return rows, commits
}

// takeUpTo takes the first n buffered rows (all when fewer); the rest stay,
// with the oldest time of the whole buffer.
func (l *lane) takeUpTo(n int) ([]Row, []func(error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rows) <= n {
		rows, commits := l.rows, l.commits
		l.rows, l.commits = nil, nil
		return rows, commits
	}
	rows, commits := l.rows[:n:n], l.commits[:n:n]
	l.rows, l.commits = l.rows[n:], l.commits[n:]
	return rows, commits
}

// age is how long the oldest buffered row has waited (0 when empty).
func (l *lane) age() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rows) == 0 {
		return -1
	}
	return time.Since(l.oldest)
}

// putBack returns rows that could not be inserted to the front of the buffer.
func (l *lane) putBack(rows []Row, commits []func(error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rows = append(rows, l.rows...)
	l.commits = append(commits, l.commits...)
	l.oldest = time.Now().Add(-time.Hour) // due at once
}

// size is the number of buffered rows.
func (l *lane) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rows)
}
