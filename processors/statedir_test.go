package processors_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two processes on one state directory: the second stops at start, naming
// the directory and the first one's pid, and the first one's store is
// untouched (it had no clean-stop marker, so a second owner that went on
// would have wiped it).
func TestSecondProcessOnAStateDirIsRefused(t *testing.T) {
	s := newStack(t, 1)
	dir := filepath.Join(t.TempDir(), "state")
	first := s.start("first", "--group", "intake", "--state-dir", dir)
	lock := filepath.Join(dir, ".lock")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(lock)
		if strings.TrimSpace(string(b)) == strconv.Itoa(first.cmd.Process.Pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first process did not take %s; log:\n%s", dir, tail(first.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	live := filepath.Join(dir, "intake", "live-store-probe")
	if err := os.MkdirAll(live, 0o755); err != nil {
		t.Fatal(err)
	}

	second := s.start("second", "--group", "intake", "--state-dir", dir)
	select {
	case err := <-second.done:
		second.done <- nil
		if err == nil {
			t.Fatalf("the second process exited 0; log:\n%s", tail(second.log))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the second process is still running on a directory in use; log:\n%s", tail(second.log))
	}
	out := tail(second.log)
	if !strings.Contains(out, dir) || !strings.Contains(out, "pid "+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Fatalf("the refusal names neither %s nor pid %d:\n%s", dir, first.cmd.Process.Pid, out)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the first process's store was touched: %v", err)
	}
	select {
	case err := <-first.done:
		t.Fatalf("the first process stopped (%v); log:\n%s", err, tail(first.log))
	default:
	}
	first.stop(t)
}
