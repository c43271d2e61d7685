package tablestore

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// offsetKey is where goka's own LevelDB storage keeps a partition's table
// offset, in its format (decimal): folders written by either read alike.
const offsetKey = "__offset"

// Pending writes a partition's store holds in memory before it hands them
// to LevelDB as one batch.
const (
	MaxPendingWrites = 512
	MaxPendingBytes  = 2 << 20
)

// Builder is goka's storage builder for the partitions of the tables under
// path: one LevelDB per topic partition, as goka's default builder lays
// them out, whose writes and table offsets go to LevelDB in batches of up
// to MaxPendingWrites (or MaxPendingBytes) instead of one journal write
// each, two per record.
//
// A batch holds every pending value and the latest offset, written
// atomically, so LevelDB holds the values of every table record up to its
// stored offset (and possibly later ones). Pending writes are lost with the
// process, like the journal's unsynced tail before: a folder is trusted
// only after a clean stop (Open, CloseClean), whose Close writes them out;
// after any other stop it is discarded and the table rebuilt from Kafka.
func Builder(path string) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		fp := filepath.Join(path, fmt.Sprintf("%s.%d", topic, partition))
		db, err := leveldb.OpenFile(fp, &opt.Options{
			// Values are already compact (binary subject states,
			// hashes); snappy would spend CPU on every read and flush
			// for little.
			Compression: opt.NoCompression,
		})
		if err != nil {
			return nil, fmt.Errorf("tablestore: open %s: %w", fp, err)
		}
		return newStore(db), nil
	}
}

// store is a goka storage.Storage over LevelDB with batched writes. Reads
// see pending writes first. It is safe for concurrent use (goka sets
// offsets from its producer's goroutine while a callback writes values).
type store struct {
	db *leveldb.DB

	mu      sync.RWMutex
	pending map[string][]byte // nil value: deleted
	bytes   int
	offset  int64
	hasOff  bool // offset set since the last batch
	closed  bool
}

func newStore(db *leveldb.DB) *store {
	return &store{db: db, pending: make(map[string][]byte, MaxPendingWrites)}
}

// Open implements storage.Storage.
func (s *store) Open() error { return nil }

// Close writes what is pending and closes LevelDB.
func (s *store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.flushLocked()
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tablestore: close: %w", cerr)
	}
	return err
}

// Has implements storage.Storage.
func (s *store) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

// Get implements storage.Storage; a missing key is nil. The value is the
// caller's own copy.
func (s *store) Get(key string) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.pending[key]
	s.mu.RUnlock()
	if ok {
		return bytes.Clone(v), nil
	}
	v, err := s.db.Get([]byte(key), nil)
	switch {
	case err == leveldb.ErrNotFound:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("tablestore: get: %w", err)
	}
	return v, nil
}

// Set implements storage.Storage.
func (s *store) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return s.put(key, value)
}

// Delete implements storage.Storage.
func (s *store) Delete(key string) error { return s.put(key, nil) }

func (s *store) put(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tablestore: write after close")
	}
	if old, ok := s.pending[key]; ok {
		s.bytes -= len(key) + len(old)
	}
	s.pending[key] = value
	s.bytes += len(key) + len(value)
	if len(s.pending) >= MaxPendingWrites || s.bytes >= MaxPendingBytes {
		return s.flushLocked()
	}
	return nil
}

// flushLocked writes the pending values and the offset as one batch.
func (s *store) flushLocked() error {
	if len(s.pending) == 0 && !s.hasOff {
		return nil
	}
	var b leveldb.Batch
	for k, v := range s.pending {
		if v == nil {
			b.Delete([]byte(k))
		} else {
			b.Put([]byte(k), v)
		}
	}
	if s.hasOff {
		b.Put([]byte(offsetKey), strconv.AppendInt(nil, s.offset, 10))
	}
	if err := s.db.Write(&b, nil); err != nil {
		return fmt.Errorf("tablestore: write %d values: %w", b.Len(), err)
	}
	clear(s.pending)
	s.bytes, s.hasOff = 0, false
	return nil
}

// GetOffset implements storage.Storage.
func (s *store) GetOffset(def int64) (int64, error) {
	s.mu.RLock()
	off, ok := s.offset, s.hasOff
	s.mu.RUnlock()
	if ok {
		return off, nil
	}
	data, err := s.db.Get([]byte(offsetKey), nil)
	switch {
	case err == leveldb.ErrNotFound:
		return def, nil
	case err != nil:
		return 0, fmt.Errorf("tablestore: get offset: %w", err)
	}
	v, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tablestore: offset %q: %w", data, err)
	}
	return v, nil
}

// SetOffset implements storage.Storage: the offset is written with the
// next batch.
func (s *store) SetOffset(offset int64) error {
	s.mu.Lock()
	s.offset, s.hasOff = offset, true
	s.mu.Unlock()
	return nil
}

// MarkRecovered implements storage.Storage: what recovery loaded is
// written out.
func (s *store) MarkRecovered() error { return s.flush() }

func (s *store) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

// Iterator implements storage.Storage, over a snapshot taken after what is
// pending was written.
func (s *store) Iterator() (storage.Iterator, error) {
	return s.IteratorWithRange(nil, nil)
}

// IteratorWithRange implements storage.Storage: [start, limit), or every
// key with prefix start when limit is empty (goka's semantics).
func (s *store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	r := &util.Range{Start: start, Limit: limit}
	if len(limit) == 0 {
		r = util.BytesPrefix(start)
	}
	return &iterator{it: s.db.NewIterator(r, &opt.ReadOptions{DontFillCache: true})}, nil
}

// iterator skips the offset key.
type iterator struct{ it ldbiter.Iterator }

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}

func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }
func (i *iterator) Seek(key []byte) bool   { return i.it.Seek(key) }
