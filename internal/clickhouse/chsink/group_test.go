package chsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// addRows adds rows from..to-1 of partition p to t.
func addRows(t *testing.T, s *Sink, c *fakeConn, table *Table, p int32, from, to int64) {
	t.Helper()
	for off := from; off < to; off++ {
		if err := s.Add(context.Background(), table, testRow(p, off, fmt.Sprintf("m-%d-%d", p, off)), c.commitFunc(p, off)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAnInsertTakesTheOtherLanesOfItsTable: one partition's lane seldom
// fills a batch, so an insert also takes the rows the table's other lanes
// hold, up to MaxRows; what is left waits for the next insert, and every
// partition's rows are still stored once each and committed in order.
func TestAnInsertTakesTheOtherLanesOfItsTable(t *testing.T) {
	conn := newFakeConn()
	s, _ := newTestSink(conn, Config{MaxRows: 10, MaxDelay: time.Hour})
	ctx := context.Background()
	for p := int32(0); p < 3; p++ {
		addRows(t, s, conn, idTable, p, 0, 4)
	}
	addRows(t, s, conn, plainTable, 5, 0, 4) // another table: not taken
	s.flush(ctx, s.lane(idTable, testRow(1, 0, "")))
	if got := conn.sizes(); fmt.Sprint(got) != "[10]" {
		t.Fatalf("batches of %v rows, want one of 10 (partition 1's 4 rows and 6 of the other lanes')", got)
	}
	s.drain()
	if got := conn.sizes(); len(got) != 3 || got[1]+got[2] != 6 {
		t.Fatalf("batches of %v rows, want 10, then the 2 rows left of %s and the 4 of %s", got, idTable.Name, plainTable.Name)
	}
	for p := int32(0); p < 3; p++ {
		checkLane(t, conn, idTable.Name, p, offsets(0, 4))
	}
}

// TestALostReplyOfAGroupInsertInsertsNothingTwice: the reply of an insert
// holding three partitions is lost after the server wrote it; the retry
// reads every partition's stored offset again and stores nothing twice.
func TestALostReplyOfAGroupInsertInsertsNothingTwice(t *testing.T) {
	conn := newFakeConn()
	conn.loseFirstReply()
	s, _ := newTestSink(conn, Config{MaxRows: 100, MaxDelay: time.Hour,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	for p := int32(0); p < 3; p++ {
		addRows(t, s, conn, plainTable, p, 0, 3)
	}
	s.flush(context.Background(), s.lane(plainTable, testRow(0, 0, "")))
	if got := conn.sizes(); len(got) == 0 || got[0] != 9 {
		t.Fatalf("batches of %v rows, want a first of 9 (three partitions)", got)
	}
	for p := int32(0); p < 3; p++ {
		checkLane(t, conn, plainTable.Name, p, offsets(0, 3))
	}
}

// TestARevokedPartitionLeavesAGroupInsert: while an insert of two
// partitions retries, one of them is revoked; its rows are failed with
// ErrRevoked and never stored, the other's are stored once ClickHouse is
// back.
func TestARevokedPartitionLeavesAGroupInsert(t *testing.T) {
	conn := newFakeConn()
	var attempts atomic.Int32
	var away atomic.Bool
	away.Store(true)
	conn.sendHook = func(context.Context, []record) error {
		attempts.Add(1)
		if away.Load() {
			return errors.New("fake: ClickHouse is away")
		}
		return nil
	}
	s, _ := newTestSink(conn, Config{MaxRows: 100, MaxDelay: time.Hour,
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	addRows(t, s, conn, idTable, 0, 0, 2)
	addRows(t, s, conn, idTable, 1, 0, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.flush(context.Background(), s.lane(idTable, testRow(0, 0, "")))
	}()
	for attempts.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	s.Reassigned([]int32{0}, false)
	for n := attempts.Load(); attempts.Load() < n+2; { // the revocation is seen
		time.Sleep(time.Millisecond)
	}
	away.Store(false)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the insert still retries 5 s after ClickHouse came back")
	}
	if got := conn.sizes(); !slices.Contains(got, 4) {
		t.Fatalf("batches of %v rows, want the first attempts to hold both partitions (4 rows)", got)
	}
	commits := conn.commits(1)
	if len(commits) != 2 {
		t.Fatalf("%d commits of partition 1, want 2", len(commits))
	}
	for _, c := range commits {
		if !errors.Is(c.err, ErrRevoked) {
			t.Errorf("partition 1 offset %d committed with %v, want ErrRevoked", c.offsets[0], c.err)
		}
	}
	for _, r := range conn.rows(idTable.Name) {
		if r.partition == 1 {
			t.Errorf("partition 1 offset %d stored after its revocation", r.offset)
		}
	}
	checkLane(t, conn, idTable.Name, 0, offsets(0, 2))
}

// TestDueLanesGoIntoOneInsert: three lanes of a table are due; the insert
// of the oldest takes the other two along, and while it is being sent new
// rows reach those two. Those rows are young: they wait for their own
// delay instead of going out at once as two small inserts.
func TestDueLanesGoIntoOneInsert(t *testing.T) {
	conn := newFakeConn()
	s, _ := newTestSink(conn, Config{MaxRows: 1000, MaxDelay: 50 * time.Millisecond})
	for p := int32(0); p < 3; p++ {
		addRows(t, s, conn, idTable, p, 0, 5)
	}
	time.Sleep(60 * time.Millisecond) // the rows age past MaxDelay
	var sends atomic.Int32
	conn.sendHook = func(context.Context, []record) error {
		if sends.Add(1) == 1 {
			for p := int32(1); p < 3; p++ {
				addRows(t, s, conn, idTable, p, 5, 7)
			}
		}
		return nil
	}
	due := s.due(s.cfg.MaxDelay)
	if len(due) != 3 {
		t.Fatalf("%d lanes due, want 3", len(due))
	}
	s.flushDue(context.Background(), due)
	if got := conn.sizes(); fmt.Sprint(got) != "[15]" {
		t.Fatalf("batches of %v rows, want one of 15 (the three due lanes), the 4 rows that came meanwhile waiting", got)
	}
	if n := s.largest().size(); n != 2 {
		t.Fatalf("the fullest lane holds %d rows, want the 2 that came during the insert", n)
	}
	s.drain()
	checkLane(t, conn, idTable.Name, 0, offsets(0, 5))
	for p := int32(1); p < 3; p++ {
		checkLane(t, conn, idTable.Name, p, offsets(0, 7))
	}
}
