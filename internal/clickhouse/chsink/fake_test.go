package chsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// The test tables' columns; testRow builds Values in this order.
var testColumns = []string{"id", "topic", "partition", "offset"}

// plainTable has no id index (like dlq_events): only the offset guard
// protects it from duplicates.
var plainTable = &Table{Name: "events", Columns: testColumns,
	TopicColumn: "topic", PartitionColumn: "partition", OffsetColumn: "offset"}

// idTable has an id index (like submissions / submission_ids).
var idTable = &Table{Name: "subs", Columns: testColumns,
	TopicColumn: "topic", PartitionColumn: "partition", OffsetColumn: "offset",
	IDTable: "sub_ids", IDColumn: "id"}

const testTopic = "epro-clean"

func testRow(p int32, off int64, id string) Row {
	return Row{Values: []any{id, testTopic, p, off}, Topic: testTopic, Partition: p, Offset: off, ID: id,
		Key: fmt.Sprintf("key-%d-%d", p, off)}
}

// record is one row as the fake ClickHouse holds it.
type record struct {
	id        string
	topic     string
	partition int32
	offset    int64
}

func recordOf(values []any) (record, error) {
	if len(values) != len(testColumns) {
		return record{}, fmt.Errorf("fake: %d values for %d columns", len(values), len(testColumns))
	}
	id, ok1 := values[0].(string)
	topic, ok2 := values[1].(string)
	p, ok3 := values[2].(int32)
	off, ok4 := values[3].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return record{}, fmt.Errorf("fake: unexpected value types %T %T %T %T", values[0], values[1], values[2], values[3])
	}
	return record{id: id, topic: topic, partition: p, offset: off}, nil
}

// event is one entry of the fake's journal, which orders what ClickHouse
// stored against the commit callbacks the sink called.
type event struct {
	kind      string // "stored", "sendfail" or "commit"
	partition int32
	offsets   []int64 // stored / sendfail: the batch; commit: one offset
	err       error   // commit: the error passed to the callback
}

// errWrittenThenFailed, returned by a sendHook, makes the fake store the
// batch and still fail the Send: the reply was lost after the server wrote.
var errWrittenThenFailed = errors.New("fake: batch written, reply lost")

// fakeConn is an in-memory ClickHouse: INSERT batches append to tables,
// the max-offset query and the id lookup read them back. Methods the sink
// does not use are left to the embedded nil driver.Conn (they panic).
type fakeConn struct {
	driver.Conn

	// idTables maps a table to its id index, filled on every insert.
	idTables map[string]string
	// sendHook, when set, runs (without the fake's lock held) on every Send
	// with the batch's rows; a non-nil error fails the Send and nothing is
	// stored, unless the error is errWrittenThenFailed.
	sendHook func(ctx context.Context, rows []record) error
	// appendHook, when set, can refuse a row in Append.
	appendHook func(r record) error
	// scanHook, when set, can fail the id filter's load (called with the
	// fake's lock held).
	scanHook func() error

	mu           sync.Mutex
	tables       map[string][]record
	ids          map[string]map[string]bool
	journal      []event
	sendAttempts int
	maxQueries   int // max-offset queries
	idQueries    int
	idLookedUp   int // ids in all lookups
	idScans      int // id filter loads
	openBatches  int
	batchSizes   []int // rows of every batch sent
}

func newFakeConn() *fakeConn {
	return &fakeConn{idTables: map[string]string{idTable.Name: idTable.IDTable},
		tables: map[string][]record{}, ids: map[string]map[string]bool{}}
}

var tableRE = regexp.MustCompile("`[^`]*`\\.`([^`]*)`")

func tableOf(query string) string {
	m := tableRE.FindStringSubmatch(query)
	if m == nil {
		return ""
	}
	return m[1]
}

// preload stores rows as if an earlier run (or another instance) inserted them.
func (c *fakeConn) preload(table string, rows ...Row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rows {
		rec, err := recordOf(r.Values)
		if err != nil {
			panic(err)
		}
		c.storeLocked(table, []record{rec})
	}
}

func (c *fakeConn) storeLocked(table string, recs []record) {
	c.tables[table] = append(c.tables[table], recs...)
	if it := c.idTables[table]; it != "" {
		if c.ids[it] == nil {
			c.ids[it] = map[string]bool{}
		}
		for _, r := range recs {
			c.ids[it][r.id] = true
		}
	}
}

func (c *fakeConn) record(e event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.journal = append(c.journal, e)
}

// commitFunc returns a commit callback for the row at p/off that notes the
// call in the journal.
func (c *fakeConn) commitFunc(p int32, off int64) func(error) {
	return func(err error) {
		c.record(event{kind: "commit", partition: p, offsets: []int64{off}, err: err})
	}
}

func (c *fakeConn) events() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event(nil), c.journal...)
}

func (c *fakeConn) rows(table string) []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record(nil), c.tables[table]...)
}

func (c *fakeConn) counts() (sendAttempts, maxQueries, idQueries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendAttempts, c.maxQueries, c.idQueries
}

// commits returns the commit events of partition p, in call order.
// loseFirstReply makes the first Send store its batch and fail, as if the
// reply were lost; it returns the count of Sends.
func (c *fakeConn) loseFirstReply() *atomic.Int32 {
	var attempts atomic.Int32
	c.sendHook = func(context.Context, []record) error {
		if attempts.Add(1) == 1 {
			return errWrittenThenFailed
		}
		return nil
	}
	return &attempts
}

// sizes returns the rows of every batch sent, in order.
func (c *fakeConn) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batchSizes)
}

func (c *fakeConn) commits(p int32) []event {
	var out []event
	for _, e := range c.events() {
		if e.kind == "commit" && e.partition == p {
			out = append(out, e)
		}
	}
	return out
}

func (c *fakeConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	if err := ctx.Err(); err != nil {
		return &fakeRow{err: err}
	}
	if len(args) == 0 && strings.HasPrefix(query, "SELECT count() FROM") { // the id filter's count
		c.mu.Lock()
		defer c.mu.Unlock()
		return &fakeRow{vals: []uint64{uint64(len(c.ids[tableOf(query)]))}}
	}
	if len(args) < 1 {
		return &fakeRow{err: fmt.Errorf("fake: %q without a partition argument", query)}
	}
	p, ok := args[0].(uint16)
	if !ok {
		return &fakeRow{err: fmt.Errorf("fake: partition argument is %T, want uint16", args[0])}
	}
	topic := ""
	if len(args) > 1 {
		topic, _ = args[1].(string)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxQueries++
	var maxOffset, n uint64
	for _, r := range c.tables[tableOf(query)] {
		if uint16(r.partition) == p && (len(args) < 2 || r.topic == topic) {
			maxOffset = max(maxOffset, uint64(r.offset))
			n++
		}
	}
	return &fakeRow{vals: []uint64{maxOffset, n}}
}

func (c *fakeConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(args) == 0 { // the id filter's load: every id
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.scanHook != nil {
			if err := c.scanHook(); err != nil {
				return nil, err
			}
		}
		c.idScans++
		var all []string
		for id := range c.ids[tableOf(query)] {
			all = append(all, id)
		}
		return &fakeRows{ids: all, next: -1}, nil
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("fake: %q with %d arguments", query, len(args))
	}
	set, ok := args[0].(clickhouse.GroupSet)
	if !ok {
		return nil, fmt.Errorf("fake: id lookup argument is %T, want clickhouse.GroupSet", args[0])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idQueries++
	c.idLookedUp += len(set.Value)
	stored := c.ids[tableOf(query)]
	var hits []string
	for _, v := range set.Value {
		if id, _ := v.(string); stored[id] {
			hits = append(hits, id)
		}
	}
	return &fakeRows{ids: hits, next: -1}, nil
}

func (c *fakeConn) PrepareBatch(ctx context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.openBatches++
	return &fakeBatch{c: c, ctx: ctx, table: tableOf(query)}, nil
}

type fakeRow struct {
	driver.Row
	vals []uint64
	err  error
}

func (r *fakeRow) Err() error { return r.err }

func (r *fakeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	if len(dest) != len(r.vals) {
		return fmt.Errorf("fake: scan into %d values, have %d", len(dest), len(r.vals))
	}
	for i, d := range dest {
		p, ok := d.(*uint64)
		if !ok {
			return fmt.Errorf("fake: scan into %T, want *uint64", d)
		}
		*p = r.vals[i]
	}
	return nil
}

type fakeRows struct {
	driver.Rows
	ids  []string
	next int
}

func (r *fakeRows) Next() bool   { r.next++; return r.next < len(r.ids) }
func (r *fakeRows) Close() error { return nil }
func (r *fakeRows) Err() error   { return nil }

func (r *fakeRows) Scan(dest ...any) error {
	p, ok := dest[0].(*string)
	if len(dest) != 1 || !ok {
		return fmt.Errorf("fake: id scan into %d values", len(dest))
	}
	*p = r.ids[r.next]
	return nil
}

type fakeBatch struct {
	driver.Batch
	c     *fakeConn
	ctx   context.Context
	table string
	rows  []record
	done  bool
}

func (b *fakeBatch) Append(v ...any) error {
	if b.done {
		return errors.New("fake: append to a finished batch")
	}
	r, err := recordOf(v)
	if err != nil {
		return err
	}
	if h := b.c.appendHook; h != nil {
		if err := h(r); err != nil {
			return err
		}
	}
	b.rows = append(b.rows, r)
	return nil
}

func (b *fakeBatch) finish() {
	b.done = true
	b.c.mu.Lock()
	b.c.openBatches--
	b.c.mu.Unlock()
}

func (b *fakeBatch) Abort() error {
	if b.done {
		return errors.New("fake: abort of a finished batch")
	}
	b.finish()
	return nil
}

func (b *fakeBatch) Send() error {
	if b.done {
		return errors.New("fake: send of a finished batch")
	}
	defer b.finish()
	b.c.mu.Lock()
	b.c.sendAttempts++
	b.c.mu.Unlock()
	err := b.ctx.Err()
	if err == nil && b.c.sendHook != nil {
		err = b.c.sendHook(b.ctx, b.rows)
	}
	// One journal entry per partition: a batch may hold several.
	var parts []int32
	offsets := map[int32][]int64{}
	for _, r := range b.rows {
		if _, ok := offsets[r.partition]; !ok {
			parts = append(parts, r.partition)
		}
		offsets[r.partition] = append(offsets[r.partition], r.offset)
	}
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	b.c.batchSizes = append(b.c.batchSizes, len(b.rows))
	if err == nil || errors.Is(err, errWrittenThenFailed) {
		b.c.storeLocked(b.table, b.rows)
		for _, p := range parts {
			b.c.journal = append(b.c.journal, event{kind: "stored", partition: p, offsets: offsets[p]})
		}
	}
	if err != nil {
		for _, p := range parts {
			b.c.journal = append(b.c.journal, event{kind: "sendfail", partition: p, offsets: offsets[p], err: err})
		}
	}
	return err
}

// newTestSink returns a sink over conn with a private registry.
func newTestSink(conn *fakeConn, cfg Config) (*Sink, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	reject := func(context.Context, Row, error) error { return nil }
	cfg.Database = "warehouse"
	s, err := New(cfg, Deps{Conn: conn, Reject: reject, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg})
	if err != nil {
		panic(err) // a test's own config; the tests pass valid ones
	}
	return s, reg
}

// startRun runs s.Run until the returned stop is called (or the test ends);
// stop returns once Run has.
func startRun(t *testing.T, s *Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gauge reads a gauge from reg (no labels), or -1 when absent.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// counter sums a counter vector's series in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// checkLane asserts that partition p's rows reached table exactly once each
// and in the order want, that each got exactly one commit, with nil, in
// offset order, and that no commit was called before its row was stored.
func checkLane(t *testing.T, c *fakeConn, table string, p int32, want []int64) {
	t.Helper()
	var got []int64
	for _, r := range c.rows(table) {
		if r.partition == p {
			got = append(got, r.offset)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("partition %d: stored offsets %v, want %v (each once, in offset order)", p, got, want)
	}
	stored := map[int64]bool{}
	var commits []int64
	for i, e := range c.events() {
		if e.partition != p {
			continue
		}
		switch e.kind {
		case "stored":
			for _, off := range e.offsets {
				stored[off] = true
			}
		case "commit":
			off := e.offsets[0]
			commits = append(commits, off)
			if e.err != nil {
				t.Errorf("partition %d offset %d: commit(%v), want commit(nil)", p, off, e.err)
			}
			if !stored[off] {
				t.Errorf("partition %d offset %d: committed (journal entry %d) before ClickHouse stored it", p, off, i)
			}
		}
	}
	if fmt.Sprint(commits) != fmt.Sprint(want) {
		t.Errorf("partition %d: commits in order %v, want %v", p, commits, want)
	}
}

func offsets(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}
