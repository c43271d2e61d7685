package tablestore

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lovoo/goka/storage"
)

func openStore(t *testing.T, dir string) storage.Storage {
	t.Helper()
	st, err := Builder(dir)("subject-table", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreReadsItsPendingWrites(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	must(t, st.Set("a", []byte("1")))
	must(t, st.Set("b", []byte("2")))
	must(t, st.Set("a", []byte("3")))
	must(t, st.Delete("b"))
	must(t, st.Set("empty", []byte{}))
	if v, _ := st.Get("a"); string(v) != "3" {
		t.Fatalf("a = %q, want the latest write 3", v)
	}
	if v, _ := st.Get("b"); v != nil {
		t.Fatalf("deleted b = %q", v)
	}
	if ok, _ := st.Has("empty"); !ok {
		t.Fatal("an empty value is a value")
	}
	if ok, _ := st.Has("never"); ok {
		t.Fatal("Has of a key never written")
	}
	v, _ := st.Get("a")
	v[0] = 'x' // the caller's copy
	if again, _ := st.Get("a"); string(again) != "3" {
		t.Fatalf("a changed through a returned value: %q", again)
	}
	if off, _ := st.GetOffset(-2); off != -2 {
		t.Fatalf("offset before any = %d, want the default", off)
	}
	must(t, st.SetOffset(41))
	if off, _ := st.GetOffset(-2); off != 41 {
		t.Fatalf("offset = %d, want 41", off)
	}
}

// A clean stop writes out what is pending: values and offset are there
// after a reopen.
func TestStoreCloseWritesPending(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	for i := range 10 {
		must(t, st.Set(fmt.Sprint("k", i), []byte(strconv.Itoa(i))))
	}
	must(t, st.Delete("k3"))
	must(t, st.SetOffset(9))
	must(t, st.Close())
	if err := st.Set("late", nil); err == nil {
		t.Fatal("a write after Close was taken")
	}
	st = openStore(t, dir)
	defer st.Close()
	if off, _ := st.GetOffset(-2); off != 9 {
		t.Fatalf("offset after a clean stop = %d, want 9", off)
	}
	for i := range 10 {
		v, _ := st.Get(fmt.Sprint("k", i))
		if want := strconv.Itoa(i); i != 3 && string(v) != want || i == 3 && v != nil {
			t.Fatalf("k%d = %q after a clean stop", i, v)
		}
	}
}

// What LevelDB holds at any moment is consistent: the stored offset never
// runs ahead of the values written before it. The copy of an open store's
// folder is what a crash would leave.
func TestStoreOffsetNeverAheadOfValues(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	n := MaxPendingWrites*2 + MaxPendingWrites/2 // two batches written, half of one pending
	for i := range n {
		must(t, st.Set(fmt.Sprint("k", i), []byte(strconv.Itoa(i))))
		must(t, st.SetOffset(int64(i)))
	}
	crashed := filepath.Join(t.TempDir(), "copy")
	copyDir(t, filepath.Join(dir, "subject-table.3"), filepath.Join(crashed, "subject-table.3"))
	after := openStore(t, crashed)
	defer after.Close()
	off, err := after.GetOffset(-1)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		t.Fatalf("no offset stored after %d writes: nothing was written in batches", n)
	}
	if off >= int64(n-1) {
		t.Fatalf("stored offset %d: the pending half batch is on disk already, not batched", off)
	}
	for i := int64(0); i <= off; i++ {
		if v, _ := after.Get(fmt.Sprint("k", i)); string(v) != strconv.FormatInt(i, 10) {
			t.Fatalf("stored offset %d, but value k%d is %q", off, i, v)
		}
	}
}

func TestStoreIteratorSeesPendingAndSkipsOffset(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	must(t, st.Set("s1", []byte("a")))
	must(t, st.SetOffset(7))
	must(t, st.Set("s2", []byte("b")))
	must(t, st.Set("t1", []byte("c")))
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
	}
	it.Release()
	if fmt.Sprint(keys) != "[s1 s2 t1]" {
		t.Fatalf("iterated %v", keys)
	}
	it, _ = st.IteratorWithRange([]byte("s"), nil)
	keys = nil
	for it.Next() {
		v, _ := it.Value()
		keys = append(keys, string(it.Key())+"="+string(v))
	}
	it.Release()
	if fmt.Sprint(keys) != "[s1=a s2=b]" {
		t.Fatalf("prefix s: %v", keys)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(to, 0o755))
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o644))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
