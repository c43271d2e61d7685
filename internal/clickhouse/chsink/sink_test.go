package chsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLaneInsertsAndCommitsInOffsetOrder: a lane inserts one batch at a
// time. While partition 0's first insert hangs in Send, neither its timer
// nor a full lane may start a second insert of partition 0 (it would land
// ahead of the first); partition 1, another lane, goes on meanwhile. In the
// end partition 0's rows are stored once each in offset order and their
// commits are called in offset order, each after its row was stored.
func TestLaneInsertsAndCommitsInOffsetOrder(t *testing.T) {
	const n = 30
	gate := make(chan struct{})    // closed to let partition 0's first Send finish
	started := make(chan struct{}) // closed when that Send began
	var p0Sends atomic.Int32
	conn := newFakeConn()
	conn.sendHook = func(ctx context.Context, rows []record) error {
		if !slices.ContainsFunc(rows, func(r record) bool { return r.partition == 0 }) {
			return nil
		}
		if p0Sends.Add(1) == 1 {
			close(started)
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	s, _ := newTestSink(conn, Config{MaxRows: 3, MaxDelay: 10 * time.Millisecond, MaxInflight: 4,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	startRun(t, s)
	ctx := context.Background()

	for off := int64(0); off < 2; off++ { // below MaxRows: the timer inserts them
		if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the timer never inserted partition 0")
	}

	// More rows of partition 0 while its first insert hangs: the lane fills,
	// so Add wants to insert it, and it ages, so the timer wants to.
	added := make(chan error, 1)
	go func() {
		for off := int64(2); off < n; off++ {
			if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
				added <- err
				return
			}
		}
		added <- nil
	}()

	// Another lane is not held up by the hanging one.
	for off := int64(0); off < 3; off++ {
		if err := s.Add(ctx, plainTable, testRow(1, off, ""), conn.commitFunc(1, off)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "partition 1 to be committed while partition 0's insert hangs",
		func() bool { return len(conn.commits(1)) == 3 })

	// Give a wrong second insert of partition 0 (from Add or from a tick) the
	// time to overtake the first: none may start.
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) && p0Sends.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if got := p0Sends.Load(); got != 1 {
		t.Errorf("%d inserts of partition 0 under way at once, want 1", got)
	}
	close(gate)

	select {
	case err := <-added:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Add of partition 0 still blocked after its insert finished")
	}
	waitFor(t, "every row of partition 0 to be committed", func() bool { return len(conn.commits(0)) >= n })

	checkLane(t, conn, plainTable.Name, 0, offsets(0, n))
	checkLane(t, conn, plainTable.Name, 1, offsets(0, 3))
	for _, e := range conn.events() {
		if e.kind == "stored" && len(e.offsets) > 3 {
			t.Errorf("a batch of %d rows, want at most MaxRows (3)", len(e.offsets))
		}
	}
	for _, n := range conn.sizes() {
		if n > 3 {
			t.Errorf("a batch of %d rows, want at most MaxRows (3)", n)
		}
	}
}

// TestRetryAfterFailedSendInsertsOnceAndAcksAfterSuccess: the first Send
// fails (nothing written); the sink retries with backoff, the rows are
// stored exactly once, and no commit is called before the successful Send.
func TestRetryAfterFailedSendInsertsOnceAndAcksAfterSuccess(t *testing.T) {
	conn := newFakeConn()
	var attempts atomic.Int32
	commitsAtAttempt := make([]int, 0, 4)
	var mu sync.Mutex
	conn.sendHook = func(context.Context, []record) error {
		mu.Lock()
		commitsAtAttempt = append(commitsAtAttempt, len(conn.commits(0)))
		mu.Unlock()
		if attempts.Add(1) == 1 {
			return errors.New("fake: connection reset by peer")
		}
		return nil
	}
	s, reg := newTestSink(conn, Config{MaxRows: 3, MaxDelay: time.Hour,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	ctx := context.Background()
	for off := int64(0); off < 3; off++ { // the third fills the lane: Add inserts it
		if err := s.Add(ctx, idTable, testRow(0, off, fmt.Sprintf("m-%d", off)), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}

	if got := attempts.Load(); got != 2 {
		t.Errorf("%d Send attempts, want 2 (one failed, one retried)", got)
	}
	mu.Lock()
	if fmt.Sprint(commitsAtAttempt) != "[0 0]" {
		t.Errorf("commits already called at each Send attempt: %v, want [0 0]", commitsAtAttempt)
	}
	mu.Unlock()
	checkLane(t, conn, idTable.Name, 0, offsets(0, 3))
	if got := counter(t, reg, "eprostream_chsink_insert_retries_total"); got != 1 {
		t.Errorf("insert_retries_total = %v, want 1", got)
	}
	if got := gauge(t, reg, "eprostream_chsink_buffered_rows"); got != 0 {
		t.Errorf("buffered_rows = %v after the insert, want 0", got)
	}
}

// TestRetryAfterLostReplyInsertsNothingTwice: the first Send writes the
// batch but its reply is lost (an error). The retry reads the highest
// stored offset from the table again and inserts nothing twice: in a table
// with an id index (without looking the ids up again: the offsets already
// tell) and in one without (or whose index lags its table: ClickHouse
// fills it through a materialized view, not atomically with the insert).
func TestRetryAfterLostReplyInsertsNothingTwice(t *testing.T) {
	for _, c := range []struct {
		table     *Table
		idLookups int
	}{{idTable, 1}, {plainTable, 0}} {
		t.Run(c.table.Name, func(t *testing.T) {
			conn := newFakeConn()
			attempts := conn.loseFirstReply()
			s, _ := newTestSink(conn, Config{MaxRows: 3, MaxDelay: time.Hour,
				RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
			ctx := context.Background()
			for off := int64(0); off < 3; off++ {
				if err := s.Add(ctx, c.table, testRow(0, off, fmt.Sprintf("m-%d", off)), conn.commitFunc(0, off)); err != nil {
					t.Fatal(err)
				}
			}
			if attempts.Load() == 0 {
				t.Fatal("no insert was attempted")
			}
			checkLane(t, conn, c.table.Name, 0, offsets(0, 3))
			if _, maxq, idq := conn.counts(); maxq != 2 || idq != c.idLookups {
				t.Errorf("%d reads of the stored offset and %d id lookups, want 2 (before the first attempt and again before the retry) and %d",
					maxq, idq, c.idLookups)
			}
		})
	}
}

// TestSkipsOffsetsAlreadyStored: in a table without an id index, rows
// re-read after a crash are skipped when their offset is at or below the
// partition's highest stored offset (loaded once, for this partition and
// topic only); their commits are still called with nil.
func TestSkipsOffsetsAlreadyStored(t *testing.T) {
	conn := newFakeConn()
	for off := int64(0); off < 5; off++ {
		conn.preload(plainTable.Name, testRow(0, off, ""))
	}
	conn.preload(plainTable.Name, testRow(1, 50, "")) // another partition
	other := testRow(0, 60, "")                       // the same partition of another topic
	other.Values[1] = "epro-alerts"
	conn.preload(plainTable.Name, other)
	s, _ := newTestSink(conn, Config{MaxRows: 5, MaxDelay: time.Hour})
	ctx := context.Background()
	for off := int64(3); off < 8; off++ {
		if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	for _, r := range conn.rows(plainTable.Name)[7:] {
		got = append(got, r.offset)
	}
	if fmt.Sprint(got) != "[5 6 7]" {
		t.Errorf("inserted offsets %v, want [5 6 7]", got)
	}
	var commits []string
	for _, c := range conn.commits(0) {
		commits = append(commits, fmt.Sprintf("%d:%v", c.offsets[0], c.err))
	}
	if want := "[3:<nil> 4:<nil> 5:<nil> 6:<nil> 7:<nil>]"; fmt.Sprint(commits) != want {
		t.Errorf("commits %v, want %s", commits, want)
	}
}

// TestSkipsIDsAlreadyStored: rows whose id is in the id index (stored at
// any offset, even from another partition) or repeats within the batch are
// skipped, as are offsets at or below the highest stored; their commits
// are still called with nil.
func TestSkipsIDsAlreadyStored(t *testing.T) {
	conn := newFakeConn()
	// An earlier run stored offsets 0..4 of partition 0 and, from another
	// partition, id "m-dup"; partition 1's offset 9 does not affect partition 0.
	for off := int64(0); off < 5; off++ {
		conn.preload(idTable.Name, testRow(0, off, fmt.Sprintf("m-%d", off)))
	}
	conn.preload(idTable.Name, testRow(1, 9, "m-dup"))
	s, _ := newTestSink(conn, Config{MaxRows: 6, MaxDelay: time.Hour})
	ctx := context.Background()
	ids := map[int64]string{3: "m-3", 4: "m-4", 5: "m-5", 6: "m-dup", 7: "m-7", 8: "m-7"}
	for off := int64(3); off <= 8; off++ {
		if err := s.Add(ctx, idTable, testRow(0, off, ids[off]), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range conn.rows(idTable.Name)[6:] {
		got = append(got, fmt.Sprintf("%d/%d/%s", r.partition, r.offset, r.id))
	}
	if want := "[0/5/m-5 0/7/m-7]"; fmt.Sprint(got) != want {
		t.Errorf("inserted %v, want %s", got, want)
	}
	commits := conn.commits(0)
	if len(commits) != 6 {
		t.Fatalf("%d commits, want 6 (skipped rows are committed too)", len(commits))
	}
	for _, c := range commits {
		if c.err != nil {
			t.Errorf("offset %d: commit(%v), want nil", c.offsets[0], c.err)
		}
	}
	if _, maxq, _ := conn.counts(); maxq != 1 {
		t.Errorf("%d max-offset queries, want 1", maxq)
	}
}

// TestAddBlocksAtMaxBuffered: with ClickHouse down, five partitions keep
// adding rows; the rows the sink holds (buffered_rows, and Adds returned
// minus commits) reach MaxBuffered and never exceed it: Add blocks. When
// ClickHouse is back every row is inserted once and every Add returns.
func TestAddBlocksAtMaxBuffered(t *testing.T) {
	const (
		bound      = 10
		partitions = 5
		perLane    = 8 // 40 rows in all: well past the bound
	)
	var down atomic.Bool
	down.Store(true)
	conn := newFakeConn()
	conn.sendHook = func(context.Context, []record) error {
		if down.Load() {
			return errors.New("fake: connection refused")
		}
		return nil
	}
	s, reg := newTestSink(conn, Config{MaxRows: 4, MaxBuffered: bound, MaxInflight: 2, MaxDelay: time.Hour,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	if s.cfg.MaxBuffered != bound {
		t.Fatalf("MaxBuffered = %d, want %d", s.cfg.MaxBuffered, bound)
	}

	var (
		mu                        sync.Mutex
		returned, committed, peak int
		inside                    int // Adds under way
	)
	observe := func() { // with mu held
		if held := returned - committed; held > peak {
			peak = held
		}
	}
	var gaugePeak atomic.Int64
	sample := func() float64 {
		v := gauge(t, reg, "eprostream_chsink_buffered_rows")
		if int64(v) > gaugePeak.Load() {
			gaugePeak.Store(int64(v))
		}
		return v
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, partitions)
	for p := int32(0); p < partitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(0); off < perLane; off++ {
				mu.Lock()
				inside++
				mu.Unlock()
				commit := func(err error) {
					mu.Lock()
					committed++
					mu.Unlock()
					conn.commitFunc(p, off)(err)
				}
				err := s.Add(ctx, plainTable, testRow(p, off, ""), commit)
				mu.Lock()
				inside--
				returned++
				observe()
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	// Every producer ends up blocked in Add while the sink holds the bound.
	waitFor(t, "every Add to block with MaxBuffered rows held", func() bool {
		mu.Lock()
		all := inside == partitions
		mu.Unlock()
		return sample() >= bound && all
	})
	if got := sample(); got != bound {
		t.Errorf("buffered_rows = %v with every Add blocked, want %d", got, bound)
	}
	mu.Lock()
	if returned >= partitions*perLane || committed != 0 {
		t.Errorf("with ClickHouse down: %d Adds returned, %d commits; want some Adds blocked and no commit",
			returned, committed)
	}
	mu.Unlock()

	down.Store(false)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(time.Millisecond):
			sample()
			if time.Now().After(deadline) {
				t.Fatal("Adds still blocked after ClickHouse came back")
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Errorf("Add: %v", err)
	}
	// Lanes below MaxRows wait for the timer (not running): end with a drain.
	s.drain()

	mu.Lock()
	defer mu.Unlock()
	if peak > bound {
		t.Errorf("Adds returned minus commits peaked at %d, above MaxBuffered %d", peak, bound)
	}
	if gp := gaugePeak.Load(); gp != bound {
		t.Errorf("buffered_rows peaked at %d, want exactly MaxBuffered %d (reached, never passed)", gp, bound)
	}
	if committed != partitions*perLane {
		t.Errorf("%d commits, want %d", committed, partitions*perLane)
	}
	for p := int32(0); p < partitions; p++ {
		checkLane(t, conn, plainTable.Name, p, offsets(0, perLane))
	}
}

// TestRunDrainsAcceptedRowsBeforeReturning: rows below MaxRows and younger
// than MaxDelay sit in their lanes; when Run's context ends, Run inserts
// them all and calls their commits before it returns.
func TestRunDrainsAcceptedRowsBeforeReturning(t *testing.T) {
	conn := newFakeConn()
	s, reg := newTestSink(conn, Config{MaxRows: 1000, MaxDelay: time.Hour})
	stop := startRun(t, s)
	ctx := context.Background()
	for p := int32(0); p < 3; p++ {
		for off := int64(10); off < 15; off++ {
			if err := s.Add(ctx, plainTable, testRow(p, off, ""), conn.commitFunc(p, off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := len(conn.rows(plainTable.Name)); got != 0 {
		t.Fatalf("%d rows inserted before the stop, want 0 (the test relies on the drain)", got)
	}
	stop() // returns once Run has
	for p := int32(0); p < 3; p++ {
		checkLane(t, conn, plainTable.Name, p, offsets(10, 15))
	}
	if got := gauge(t, reg, "eprostream_chsink_buffered_rows"); got != 0 {
		t.Errorf("buffered_rows = %v after Run returned, want 0", got)
	}
}

// TestRunDrainFinishesInterruptedInsertInOffsetOrder: the timer's insert of
// partition 0 is retrying (ClickHouse down) when Run's context ends, and
// newer rows wait behind it. The interrupted rows go back to the front of
// the lane and the drain inserts old and new rows in offset order, exactly
// once, before Run returns.
func TestRunDrainFinishesInterruptedInsertInOffsetOrder(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	conn := newFakeConn()
	conn.sendHook = func(context.Context, []record) error {
		if down.Load() {
			return errors.New("fake: connection refused")
		}
		return nil
	}
	s, _ := newTestSink(conn, Config{MaxRows: 1000, MaxDelay: 10 * time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	ctx := context.Background()
	for off := int64(0); off < 3; off++ {
		if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the timer's insert to fail twice", func() bool { a, _, _ := conn.counts(); return a >= 2 })
	// The failing insert holds the lane's flush; these wait behind it.
	for off := int64(3); off < 6; off++ {
		if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
			t.Fatal(err)
		}
	}
	if n := laneSize(s, plainTable, 0); n < 3 {
		t.Fatalf("%d rows waiting in the lane, want offsets 3..5 at least", n)
	}
	if got := len(conn.rows(plainTable.Name)); got != 0 {
		t.Fatalf("%d rows stored while ClickHouse is down", got)
	}
	cancel()
	down.Store(false) // the drain's inserts succeed (after a retry at most)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	checkLane(t, conn, plainTable.Name, 0, offsets(0, 6))
}

// A partition revoked and assigned again: another instance inserted rows of
// it meanwhile but did not commit them, and they are read again here. After
// Reassigned (the warehouse calls it on every rebalance) the lane reads its
// highest stored offset again, so those rows are skipped, even in a table
// without an id index.
func TestAReassignedLaneReadsItsStoredOffsetAgain(t *testing.T) {
	conn := newFakeConn()
	s, _ := newTestSink(conn, Config{MaxRows: 3, MaxDelay: time.Hour})
	ctx := context.Background()
	add := func(from, to int64) {
		t.Helper()
		for off := from; off < to; off++ {
			if err := s.Add(ctx, plainTable, testRow(0, off, ""), conn.commitFunc(0, off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(0, 3) // a full lane: inserted, the lane now knows offset 2
	k := laneKey{table: plainTable.Name, topic: testTopic}
	if l := s.lanes[k]; l == nil || !l.loaded || l.maxOffset != 2 {
		t.Fatalf("lane after the first insert: %+v, want loaded with maxOffset 2", l)
	}
	conn.preload(plainTable.Name, testRow(0, 3, ""), testRow(0, 4, ""), testRow(0, 5, ""))
	s.Reassigned([]int32{0}, false)
	add(3, 6)
	if _, maxq, _ := conn.counts(); maxq != 2 {
		t.Errorf("%d max-offset queries, want 2: the lane reads it again after the reassignment", maxq)
	}
	var got []int64
	for _, r := range conn.rows(plainTable.Name) {
		got = append(got, r.offset)
	}
	if want := "[0 1 2 3 4 5]"; fmt.Sprint(got) != want {
		t.Errorf("stored offsets %v, want %s (the other instance's 3..5 once)", got, want)
	}
	add(6, 9) // no reassignment since: no further query
	if _, maxq, _ := conn.counts(); maxq != 2 {
		t.Errorf("%d max-offset queries after a plain insert, want still 2", maxq)
	}
}

// laneSize is the number of rows waiting in partition p's lane of table.
func laneSize(s *Sink, table *Table, p int32) int {
	s.mu.Lock()
	l := s.lanes[laneKey{table: table.Name, topic: testTopic, partition: p}]
	s.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.size()
}

// TestARevokedPartitionsRowsAreFailed: after a rebalance that leaves the
// group without partition 1, the rows it buffered for partition 1 are
// failed with ErrRevoked (its new owner reads them again) and never
// inserted; partition 0's rows stay. When partition 1 comes back, its lane
// reads its stored offset again and inserts.
func TestARevokedPartitionsRowsAreFailed(t *testing.T) {
	conn := newFakeConn()
	s, reg := newTestSink(conn, Config{MaxRows: 100, MaxDelay: time.Hour})
	ctx := context.Background()
	for p := int32(0); p < 2; p++ {
		for off := int64(0); off < 3; off++ {
			if err := s.Add(ctx, idTable, testRow(p, off, fmt.Sprintf("m-%d-%d", p, off)), conn.commitFunc(p, off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := gauge(t, reg, "eprostream_chsink_buffered_rows"); got != 6 {
		t.Fatalf("buffered_rows = %v before the rebalance, want 6", got)
	}
	s.Reassigned([]int32{0}, false)
	deadline := time.Now().Add(5 * time.Second)
	for len(conn.commits(1)) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var revoked []string
	for _, c := range conn.commits(1) {
		revoked = append(revoked, fmt.Sprintf("%d:%v", c.offsets[0], errors.Is(c.err, ErrRevoked)))
	}
	if want := "[0:true 1:true 2:true]"; fmt.Sprint(revoked) != want {
		t.Fatalf("partition 1's commits %v, want %s (each failed with ErrRevoked)", revoked, want)
	}
	if got := gauge(t, reg, "eprostream_chsink_buffered_rows"); got != 3 {
		t.Errorf("buffered_rows = %v after the rebalance, want partition 0's 3", got)
	}
	if n := laneSize(s, idTable, 0); n != 3 {
		t.Errorf("partition 0's lane holds %d rows, want 3", n)
	}
	s.drain()
	if n := len(conn.rows(idTable.Name)); n != 3 {
		t.Fatalf("%d rows stored, want partition 0's 3 only", n)
	}
	// Partition 1 comes back: its lane reads its stored offset, and inserts.
	s.Reassigned([]int32{0, 1}, false)
	_, before, _ := conn.counts()
	if err := s.Add(ctx, idTable, testRow(1, 3, "m-1-3"), conn.commitFunc(1, 3)); err != nil {
		t.Fatal(err)
	}
	s.drain()
	if _, after, _ := conn.counts(); after != before+1 {
		t.Errorf("%d max-offset queries for partition 1 after it came back, want 1", after-before)
	}
	if n := len(conn.rows(idTable.Name)); n != 4 {
		t.Fatalf("%d rows stored, want partition 0's 3 and partition 1's new one", n)
	}
}

// TestAPartitionThatComesBackWaitsForItsOldInsert: partition 0 is revoked
// while an insert of it is under way and comes back before that insert
// ends; its rows read again are not inserted beside the old insert (which
// would store them twice) but after it, and are then found stored.
func TestAPartitionThatComesBackWaitsForItsOldInsert(t *testing.T) {
	conn := newFakeConn()
	inside, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	conn.sendHook = func(context.Context, []record) error {
		if first.CompareAndSwap(false, true) {
			close(inside)
			<-release // the old assignment's insert, slow
		}
		return nil
	}
	s, _ := newTestSink(conn, Config{MaxRows: 3, MaxDelay: time.Hour})
	ctx := context.Background()
	add := func() {
		for off := int64(0); off < 3; off++ {
			if err := s.Add(ctx, idTable, testRow(0, off, fmt.Sprintf("m-%d", off)), conn.commitFunc(0, off)); err != nil {
				t.Error(err)
			}
		}
	}
	oldDone := make(chan struct{})
	go func() { defer close(oldDone); add() }()
	<-inside
	s.Reassigned(nil, false)        // revoked mid-insert
	s.Reassigned([]int32{0}, false) // and back
	newDone := make(chan struct{})
	go func() { defer close(newDone); add() }() // the same records, read again
	time.Sleep(20 * time.Millisecond)
	close(release)
	<-oldDone
	<-newDone
	if n := len(conn.rows(idTable.Name)); n != 3 {
		t.Fatalf("%d rows stored, want 3 (each once)", n)
	}
}

// TestARetryingInsertOfARevokedPartitionGivesUp: an insert that keeps
// failing (ClickHouse away) while its partition is revoked stops retrying
// and fails its rows with ErrRevoked, rather than insert them later beside
// the partition's new owner.
func TestARetryingInsertOfARevokedPartitionGivesUp(t *testing.T) {
	conn := newFakeConn()
	var attempts atomic.Int32
	conn.sendHook = func(context.Context, []record) error {
		attempts.Add(1)
		return errors.New("fake: ClickHouse is away")
	}
	s, _ := newTestSink(conn, Config{MaxRows: 2, MaxDelay: time.Hour,
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for off := int64(0); off < 2; off++ { // the second Add fills the lane and inserts
			if err := s.Add(ctx, idTable, testRow(1, off, fmt.Sprintf("m-%d", off)), conn.commitFunc(1, off)); err != nil {
				t.Error(err)
			}
		}
	}()
	for attempts.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	s.Reassigned([]int32{0}, false)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the insert of the revoked partition still retries 5 s after the rebalance")
	}
	for _, c := range conn.commits(1) {
		if !errors.Is(c.err, ErrRevoked) {
			t.Errorf("offset %d committed with %v, want ErrRevoked", c.offsets[0], c.err)
		}
	}
	if n := len(conn.commits(1)); n != 2 {
		t.Fatalf("%d commits, want 2", n)
	}
	if n := len(conn.rows(idTable.Name)); n != 0 {
		t.Fatalf("%d rows stored, want none", n)
	}
}
