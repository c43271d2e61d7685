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
//
// A folder belongs to one process at a time: Open takes an exclusive flock
// on its lock file and holds it until Release or the process's exit (the
// kernel drops it even after kill -9). A second process on the same folder
// fails at Open with ErrInUse, naming the folder and the holder's pid, and
// deletes nothing.
//
// Builder is the local storage itself: goka's LevelDB layout with writes
// and table offsets batched (see Builder).
package tablestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	marker   = "clean-shutdown"
	lockName = ".lock"
)

// ErrInUse is wrapped by Open when another process holds the folder.
var ErrInUse = errors.New("tablestore: state directory in use")

// Dir is a state folder in use.
type Dir struct {
	path string
	lock *os.File
}

// Open takes path for this process and prepares it for a run. It reports
// whether the previous run ended cleanly; if it did not, everything in path
// (but the lock) is removed first.
func Open(path string) (*Dir, bool, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, false, fmt.Errorf("tablestore: %w", err)
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, false, err
	}
	d, clean, err := prepare(path)
	if err != nil {
		_ = lock.Close()
		return nil, false, err
	}
	d.lock = lock
	return d, clean, nil
}

// lockDir takes the folder's flock without blocking and writes this
// process's pid into the lock file, for the message of the next one.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(path, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tablestore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by pid %s; give each process its own --state-dir",
				ErrInUse, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("tablestore: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Release gives the folder up (the process's exit does too).
func (d *Dir) Release() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the descriptor drops the flock
	d.lock = nil
	return err
}

func prepare(path string) (*Dir, bool, error) {
	clean := true
	if _, err := os.Stat(filepath.Join(path, marker)); errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, false, fmt.Errorf("tablestore: %w", err)
		}
		clean = len(entries) <= 1 // a new folder (only the lock) is clean
		for _, e := range entries {
			if e.Name() == lockName {
				continue
			}
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
