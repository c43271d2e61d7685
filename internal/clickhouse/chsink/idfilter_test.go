package chsink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// addAll adds rows of partition p (id by offset) to table idTable, one
// insert each time MaxRows fill.
func addAll(t *testing.T, s *Sink, conn *fakeConn, p int32, ids map[int64]string) {
	t.Helper()
	offs := make([]int64, 0, len(ids))
	for off := range ids {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(a, b int) bool { return offs[a] < offs[b] })
	for _, off := range offs {
		if err := s.Add(context.Background(), idTable, testRow(p, off, ids[off]), conn.commitFunc(p, off)); err != nil {
			t.Fatal(err)
		}
	}
}

// stored returns the ids of table's rows as "partition/offset/id".
func stored(conn *fakeConn, from int) []string {
	var got []string
	for _, r := range conn.rows(idTable.Name)[from:] {
		got = append(got, fmt.Sprintf("%d/%d/%s", r.partition, r.offset, r.id))
	}
	return got
}

func (c *fakeConn) lookups() (ids, scans int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idLookedUp, c.idScans
}

// TestASoleSinkLooksUpOnlyWhatItsFilterMayHold: holding every partition,
// the sink loads the id index into its filter once and looks up only ids
// the filter may hold; an id stored before the load and an id the sink
// itself sent earlier, both arriving again at new offsets, are still
// skipped.
func TestASoleSinkLooksUpOnlyWhatItsFilterMayHold(t *testing.T) {
	conn := newFakeConn()
	for i := int64(0); i < 100; i++ { // an earlier run, another partition
		conn.preload(idTable.Name, testRow(1, i, fmt.Sprintf("old-%d", i)))
	}
	s, reg := newTestSink(conn, Config{MaxRows: 10, MaxDelay: time.Hour})
	s.Reassigned([]int32{0, 1}, true)
	first := map[int64]string{}
	for off := int64(0); off < 9; off++ {
		first[off] = fmt.Sprintf("new-%d", off)
	}
	first[9] = "old-5"
	addAll(t, s, conn, 0, first)
	second := map[int64]string{10: "new-3"}
	for off := int64(11); off < 20; off++ {
		second[off] = fmt.Sprintf("new-%d", off)
	}
	addAll(t, s, conn, 0, second)

	got := stored(conn, 100)
	if len(got) != 18 {
		t.Fatalf("stored %d rows, want 18 (20 sent, old-5 and new-3 again): %v", len(got), got)
	}
	for _, g := range got {
		if g == "0/9/old-5" || g == "0/10/new-3" {
			t.Errorf("stored %s: a duplicate at a new offset", g)
		}
	}
	looked, scans := conn.lookups()
	if scans != 1 {
		t.Errorf("%d filter loads, want 1", scans)
	}
	// The two duplicates must have been looked up (the observation this
	// test relies on); the 18 new ids, bar a false positive, not.
	if n := counter(t, reg, "eprostream_chsink_looked_up_ids_total"); n < 2 || n > 4 || int(n) != looked {
		t.Errorf("looked up %v ids (fake saw %d), want 2 to 4 of 20", n, looked)
	}
	checkCommits(t, conn, 0, 20)
}

// TestASinkNotHoldingEveryPartitionLooksEveryIDUp: another instance may
// write the table, so every id is looked up, and one stored meanwhile by
// the other instance is skipped.
func TestASinkNotHoldingEveryPartitionLooksEveryIDUp(t *testing.T) {
	conn := newFakeConn()
	s, _ := newTestSink(conn, Config{MaxRows: 5, MaxDelay: time.Hour})
	s.Reassigned([]int32{0}, false)
	addAll(t, s, conn, 0, map[int64]string{0: "a", 1: "b", 2: "c", 3: "d", 4: "e"})
	conn.preload(idTable.Name, testRow(1, 0, "x")) // the other instance
	addAll(t, s, conn, 0, map[int64]string{5: "x", 6: "f", 7: "g", 8: "h", 9: "i"})
	if got := stored(conn, 0); len(got) != 10 || got[6] != "0/6/f" {
		t.Errorf("stored %v, want a..e, the other instance's x, f..i", got)
	}
	if looked, scans := conn.lookups(); looked != 10 || scans != 0 {
		t.Errorf("looked up %d ids with %d filter loads, want 10 and 0", looked, scans)
	}
}

// TestReassignedLoadsTheFilterAgain: while the instance shared the
// partitions another one stored an id; holding every partition again, the
// sink loads its filter anew and skips that id.
func TestReassignedLoadsTheFilterAgain(t *testing.T) {
	conn := newFakeConn()
	s, _ := newTestSink(conn, Config{MaxRows: 2, MaxDelay: time.Hour})
	s.Reassigned([]int32{0, 1}, true)
	addAll(t, s, conn, 0, map[int64]string{0: "a", 1: "b"})
	s.Reassigned([]int32{0}, false)
	conn.preload(idTable.Name, testRow(1, 0, "x")) // the other instance, meanwhile
	s.Reassigned([]int32{0, 1}, true)
	addAll(t, s, conn, 0, map[int64]string{2: "x", 3: "c"})
	if got := fmt.Sprint(stored(conn, 0)); got != "[0/0/a 0/1/b 1/0/x 0/3/c]" {
		t.Errorf("stored %s, want x once (the other instance's)", got)
	}
	if _, scans := conn.lookups(); scans != 2 {
		t.Errorf("%d filter loads, want 2", scans)
	}
}

// TestALoadWaitsForAnInsertUnderWay: a filter loaded while another lane's
// send is under way must not miss that send's ids, or a duplicate of one
// arriving next would pass as new.
func TestALoadWaitsForAnInsertUnderWay(t *testing.T) {
	conn := newFakeConn()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	conn.sendHook = func(_ context.Context, rows []record) error {
		once.Do(func() { close(started); <-release })
		return nil
	}
	s, _ := newTestSink(conn, Config{MaxRows: 1, MaxDelay: time.Hour})
	s.Reassigned([]int32{0, 1}, true)
	first := make(chan struct{})
	go func() { defer close(first); addAll(t, s, conn, 0, map[int64]string{0: "a"}) }()
	<-started
	s.Reassigned([]int32{0, 1}, true) // the filter is stale: the next insert loads it
	second := make(chan struct{})
	go func() { defer close(second); addAll(t, s, conn, 1, map[int64]string{0: "a"}) }()
	time.Sleep(100 * time.Millisecond) // partition 1's insert reaches the load
	close(release)
	<-first
	<-second
	if got := fmt.Sprint(stored(conn, 0)); got != "[0/0/a]" {
		t.Errorf("stored %s, want a once", got)
	}
}

// TestAFilterThatCannotLoadLeavesTheLookups: the id index cannot be read
// whole; inserts go on looking every id up, exactly as without a filter.
func TestAFilterThatCannotLoadLeavesTheLookups(t *testing.T) {
	conn := newFakeConn()
	conn.scanHook = func() error { return errors.New("fake: too many ids") }
	conn.preload(idTable.Name, testRow(1, 0, "x"))
	s, reg := newTestSink(conn, Config{MaxRows: 3, MaxDelay: time.Hour})
	s.Reassigned([]int32{0, 1}, true)
	addAll(t, s, conn, 0, map[int64]string{0: "a", 1: "x", 2: "b"})
	addAll(t, s, conn, 0, map[int64]string{3: "a", 4: "c", 5: "d"})
	if got := fmt.Sprint(stored(conn, 0)); got != "[1/0/x 0/0/a 0/2/b 0/4/c 0/5/d]" {
		t.Errorf("stored %s", got)
	}
	if n := counter(t, reg, "eprostream_chsink_looked_up_ids_total"); n != 6 {
		t.Errorf("looked up %v ids, want all 6", n)
	}
	if n := counter(t, reg, "eprostream_chsink_id_filter_loads_total"); n != 0 {
		t.Errorf("%v filter loads, want 0", n)
	}
}

// checkCommits asserts partition p got n commits, all nil.
func checkCommits(t *testing.T, conn *fakeConn, p int32, n int) {
	t.Helper()
	commits := conn.commits(p)
	if len(commits) != n {
		t.Fatalf("%d commits, want %d", len(commits), n)
	}
	for _, c := range commits {
		if c.err != nil {
			t.Errorf("offset %d: commit(%v), want nil", c.offsets[0], c.err)
		}
	}
}
