package tablestore

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestUncleanFolderIsDiscarded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d, clean, err := Open(dir)
	if err != nil || !clean {
		t.Fatalf("new folder: clean %v, err %v", clean, err)
	}
	table := filepath.Join(d.Path(), "processor", "subject-table.0")
	if err := os.MkdirAll(table, 0o755); err != nil {
		t.Fatal(err)
	}
	// Crash: no CloseClean; the process is gone, and its flock with it.
	// The next run must not trust the table.
	_ = d.Release()
	if _, clean, err = Open(dir); err != nil || clean {
		t.Fatalf("after a crash: clean %v, err %v", clean, err)
	}
	if _, err := os.Stat(table); !os.IsNotExist(err) {
		t.Fatalf("local table survived an unclean shutdown: %v", err)
	}
}

func TestCleanFolderIsKept(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := Open(dir)
	table := filepath.Join(dir, "processor")
	_ = os.MkdirAll(table, 0o755)
	if err := d.CloseClean(); err != nil {
		t.Fatal(err)
	}
	_ = d.Release()
	if _, clean, err := Open(dir); err != nil || !clean {
		t.Fatalf("after a clean stop: clean %v, err %v", clean, err)
	}
	if _, err := os.Stat(table); err != nil {
		t.Fatal("local table was discarded after a clean stop")
	}
	// The marker is consumed: a crash in this run is detected next time.
	if _, err := os.Stat(filepath.Join(dir, marker)); !os.IsNotExist(err) {
		t.Fatal("marker still present while running")
	}
}

// A second process on a folder in use is refused at Open, with the holder's
// pid, and the first one's tables are left as they are.
func TestSecondOwnerIsRefusedAndDeletesNothing(t *testing.T) {
	dir := t.TempDir()
	first, _, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(dir, "processor", "subject-table.0")
	if err := os.MkdirAll(table, 0o755); err != nil {
		t.Fatal(err)
	}
	// No clean-shutdown marker: were the second Open to proceed it would
	// discard the live table.
	_, _, err = Open(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Open = %v, want ErrInUse naming %s and pid %d", err, dir, os.Getpid())
	}
	if _, err := os.Stat(table); err != nil {
		t.Fatalf("the first owner's table is gone: %v", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, _, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Release: %v", err)
	}
	_ = again.Release()
}
