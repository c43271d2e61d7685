// Package tablestore guards the local copy of goka group tables.
//
// A goka processor writes a table value to its local storage before Kafka
// has acknowledged the same value on the table topic. After a crash the
// local copy can therefore hold writes that Kafka never got; a processor
// restarted on it would believe those writes were made, skip re-applying the
// uncommitted input (its dedup memory says "applied") and the table topic,
// the source of truth, would lose them. So a state folder is trusted only
// after a clean shutdown; otherwise it is discarded and the tables are
// rebuilt from Kafka.
package tablestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const marker = "clean-shutdown"

// Dir is a state folder in use.
type Dir struct {
	path string
}

// Open prepares path for a run. It reports whether the previous run ended
// cleanly; if it did not, everything in path is removed first.
func Open(path string) (*Dir, bool, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, false, fmt.Errorf("tablestore: %w", err)
	}
	clean := true
	if _, err := os.Stat(filepath.Join(path, marker)); errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, false, fmt.Errorf("tablestore: %w", err)
		}
		clean = len(entries) == 0 // a new folder is clean
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(path, e.Name())); err != nil {
				return nil, false, fmt.Errorf("tablestore: discard %s: %w", e.Name(), err)
			}
		}
	}
	if err := os.Remove(filepath.Join(path, marker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("tablestore: %w", err)
	}
	return &Dir{path: path}, clean, nil
}

// Path is the folder.
func (d *Dir) Path() string { return d.path }

// CloseClean records that every processor using the folder stopped cleanly,
// so the next run may trust it.
func (d *Dir) CloseClean() error {
	if err := os.WriteFile(filepath.Join(d.path, marker), nil, 0o644); err != nil {
		return fmt.Errorf("tablestore: %w", err)
	}
	return nil
}
