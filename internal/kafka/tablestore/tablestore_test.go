package tablestore

import (
	"os"
	"path/filepath"
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
	// Crash: no CloseClean. The next run must not trust the table.
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
