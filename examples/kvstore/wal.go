package kvstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/btree"
)

// The write-ahead log: why it is a Storage, and how it stays durable.
//
// A durable put used to cost one bbolt transaction, synced: a round of 45
// random keys rewrites ~160 pages (640 KiB for 7 KiB of values) and takes
// ~6 ms, so the disk, not the CPU, bound the puts. walStorage puts a log in
// front of the bbolt file (or of any Storage, its "base"): a round (one
// Update) is appended to the log as one record, fdatasynced once, applied
// to an in-memory table (the memtable) and acknowledged. The base is
// written only at checkpoints, by a background goroutine, in one synced
// transaction of everything the log held, and the log files it covers are
// then deleted.
//
// It is a Storage, not a layer inside the committer, so that the committer
// (its rounds, loads, and the simulator that runs them as events) is
// unchanged, the Storage contract (atomic Updates, Scans that see all or
// nothing of one) is kept and tested in one place against the same
// conformance test as the others, and any Storage can be the base (a
// MemDisk in tests).
//
// The base is never written without a sync: a bbolt file committed with
// NoSync may be left corrupt by a power loss (meta page written, data pages
// not). Between checkpoints, reads see the base overlaid by the memtable:
// Scan merges the two. The checkpoint transaction also records the
// sequence number of the last log file it covers (walBucket), so that a
// log file whose deletion a power loss undid is never replayed over newer
// data. On open, the log files after the checkpoint are replayed, in
// order, into the memtable, which is then checkpointed at once: the start
// costs one replay of at most two logs' worth (bounded below), and the
// daemon starts with an empty log.
//
// The invariant that makes every crash safe: a log file is deleted only
// after a synced checkpoint that covers it is in the base. So the files
// after the base's checkpoint are consecutive (a gap is lost data), even
// after idle restarts (whose checkpoint holds no puts, only the number).
//
// Bounds: a checkpoint starts when the current log file reaches
// checkpointBytes (the file is rotated and its memtable frozen, the
// appends go on in a new file); if the next file fills up before that
// checkpoint is done, the next Update waits for it. So the log on disk,
// the memtables in memory, and the replay at start hold at most about two
// files of checkpointBytes each.
//
// Errors are final (fail-stop): after a failed write or sync of the log,
// or a failed checkpoint, every Update fails and the store must be
// restarted, which replays the log. Scans go on: the memtables hold
// exactly the acknowledged puts (a failed checkpoint keeps its frozen
// one), so the overlay stays right whatever the base holds. Retrying an fsync that failed is not
// safe (the kernel may have dropped the dirty pages it could not write),
// and appending after a write that failed half-way would leave a hole of
// garbage in the middle of the log.

// Log file layout: a header (walMagic, the file's sequence number), then
// records. A record is its payload's length (uint32), the CRC-32C of the
// payload, the CRC-32C of those 8 bytes (so that a damaged length is told
// from a record cut short by a crash), and the payload: a flags byte
// (walLast: the record ends its transaction) and puts (uvarint length and
// bytes of the bucket, the key, the value). An Update is one record unless it is larger than
// walChunk, then several, the last flagged walLast: replay applies a
// transaction once its last record is read.
// The file being written has zeros after its last record (walPrealloc),
// which the replay reads as the end, as it reads a torn tail; a file is
// rotated only once its records reach checkpointBytes, past the zeros,
// so an earlier file ends with its last record.
const (
	walMagic      = "AKVWAL01"
	walHeaderSize = len(walMagic) + 8
	walRecHeader  = 12
	walLast       = 1
	// walChunk is the size past which an Update's record is closed and
	// another one started.
	walChunk = 8 << 20
	// walPrealloc is how far ahead of its records a log file is written
	// with zeros (up to checkpointBytes, where it is rotated): a record
	// that fits is then an overwrite of blocks the file has, and its
	// fdatasync flushes the data alone, not the file's new length through
	// the filesystem's journal: about a third less per sync with three
	// logs on one disk (BenchmarkLogSync, docs/performance.md). The zeros
	// go out with the record that needs them, in the same write and sync.
	walPrealloc = 1 << 20
	// walMaxRecord bounds a record's length, read from disk before its
	// checksum can be checked. A put larger than that fails.
	walMaxRecord = 64 << 20
	// defaultMaxUpdate bounds the log bytes of one Update (a larger one
	// fails, and writes nothing), so that a log file holds at most
	// checkpointBytes and one Update, and the replay can refuse a larger
	// file instead of reading it whole into memory.
	defaultMaxUpdate = 1 << 30
	// defaultCheckpointBytes is the log file size that starts a
	// checkpoint: ~120 k puts of 100 bytes, several seconds of writes at
	// full speed; such a file is replayed and checkpointed at start in
	// 2–4 s on a loaded 2-core VM (BenchmarkWALReopen).
	defaultCheckpointBytes = 16 << 20
)

// walBucket holds the sequence number of the last log file that the
// base's content covers (checkpointKey).
var (
	walBucket     = []byte("wal")
	checkpointKey = []byte("checkpoint")
	walCRC        = crc32.MakeTable(crc32.Castagnoli)
)

// ErrWALCorrupt means a log file has a damaged record before its end: not
// a write torn by a crash (which is ignored), but lost or damaged data.
var ErrWALCorrupt = errors.New("kvstore: write-ahead log corrupt")

// walOptions are the log's settings; tests shrink the checkpoint size and
// interrupt checkpoints.
type walOptions struct {
	checkpointBytes int64
	// beforeCheckpoint runs when a checkpoint starts, before it writes
	// the base.
	beforeCheckpoint func()
	// afterCheckpoint runs once a checkpoint is committed to the base,
	// before its log files are deleted; an error stops it there.
	afterCheckpoint func() error
	// rotateWaits runs when an Update has to wait for a checkpoint.
	rotateWaits func()
	// maxUpdate bounds an Update's log bytes; 0 is defaultMaxUpdate.
	maxUpdate int64
}

// walItem is a key of the memtable and its value.
type walItem struct {
	key string
	val []byte
}

func walLess(a, b walItem) bool { return a.key < b.key }

// memtable holds the puts of some log files, by bucket.
type memtable map[string]*btree.BTreeG[walItem]

// walStorage is a Storage: a write-ahead log in dir in front of a base
// Storage that it owns (and closes).
type walStorage struct {
	dir  string
	base Storage
	opt  walOptions

	// umu serializes Updates and Close: the file and size are theirs.
	umu  sync.Mutex
	file *os.File
	seq  uint64 // the current file's sequence number
	size int64  // its size: the records' end
	// alloc is the file's length: past size it holds zeros, written and
	// synced ahead of the records (walPrealloc).
	alloc int64

	// ckpt orders Scans before the base commits of checkpoints: a Scan
	// holds it, shared, from its snapshot of the memtables to the end of
	// its read of the base, so that the base it reads holds nothing newer
	// than its snapshot.
	ckpt sync.RWMutex

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a checkpoint ends
	buckets  map[string]bool
	active   memtable // the current file's puts (and, until the first checkpoint, the replayed ones)
	frozen   memtable // the puts a checkpoint is writing to the base, or nil
	err      error    // the error that stopped the log, for good
	running  sync.WaitGroup
	closed   bool
	frozenSz int64 // the size of the log file being checkpointed, or 0
	maxBytes int64 // the largest total size of the log files seen, for tests
}

// openWAL opens the log in dir in front of base (which it owns from then
// on, and closes on error): it replays the log files after the base's
// last checkpoint, checkpoints them, and starts a new file.
func openWAL(dir string, base Storage, opt walOptions) (_ *walStorage, err error) {
	if opt.checkpointBytes <= 0 {
		opt.checkpointBytes = defaultCheckpointBytes
	}
	if opt.maxUpdate <= 0 {
		opt.maxUpdate = defaultMaxUpdate
	}
	w := &walStorage{dir: dir, base: base, opt: opt, buckets: map[string]bool{}, active: memtable{}}
	w.cond = sync.NewCond(&w.mu)
	defer func() {
		if err != nil {
			if w.file != nil {
				_ = w.file.Close()
			}
			_ = base.Close()
		}
	}()
	if err := base.Buckets([][]byte{walBucket}); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	done, err := w.checkpointSeq()
	if err != nil {
		return nil, err
	}
	seqs, err := w.logFiles()
	if err != nil {
		return nil, err
	}
	last := done
	for i, s := range seqs {
		if s <= done {
			continue // covered by the checkpoint: its deletion was interrupted
		}
		if s != last+1 {
			return nil, fmt.Errorf("%w: %s is missing (found %s after checkpoint %d)", ErrWALCorrupt, w.path(last+1), w.path(s), done)
		}
		if err := w.replay(s, i == len(seqs)-1); err != nil {
			return nil, err
		}
		last = s
	}
	if last > done {
		// Record last as the checkpoint, with what was replayed (maybe
		// nothing), synced, before any file up to last is deleted: the
		// files after the base's checkpoint must stay contiguous, or the
		// next open takes the next file for a lost one.
		w.frozen, w.active = w.active, memtable{}
		err = w.checkpoint(w.frozen, last)
		w.frozen = nil
		if err != nil {
			return nil, err
		}
	} else if err := w.removeLogs(done); err != nil {
		return nil, err
	}
	w.seq = last + 1
	if w.file, err = w.create(w.seq); err != nil {
		return nil, err
	}
	w.size, w.alloc = int64(walHeaderSize), int64(walHeaderSize)
	return w, nil
}

func (w *walStorage) path(seq uint64) string {
	return filepath.Join(w.dir, fmt.Sprintf("wal-%016x.log", seq))
}

// logFiles lists the sequence numbers of the log files, in order.
func (w *walStorage) logFiles() ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(w.dir, "wal-*.log"))
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, n := range names {
		hex := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "wal-"), ".log")
		s, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 {
			return nil, fmt.Errorf("wal: %s: not a log file name", n)
		}
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// checkpointSeq reads the base's checkpoint: the last log file it covers.
func (w *walStorage) checkpointSeq() (uint64, error) {
	var seq uint64
	err := w.base.Scan(walBucket, nil, func(k, v []byte) (bool, error) {
		if bytes.Equal(k, checkpointKey) {
			if len(v) != 8 {
				return false, fmt.Errorf("wal: checkpoint is %d bytes, want 8", len(v))
			}
			seq = binary.BigEndian.Uint64(v)
		}
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("wal: read the checkpoint: %w", err)
	}
	return seq, nil
}

// create makes log file seq with its header, synced, and syncs the
// directory so that the file is found after a power loss.
func (w *walStorage) create(seq uint64) (*os.File, error) {
	f, err := os.OpenFile(w.path(seq), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	hdr := binary.BigEndian.AppendUint64([]byte(walMagic), seq)
	if _, err = f.Write(hdr); err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: create %s: %w", w.path(seq), err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// walPut is a put of an Update: its value is in the Update's buffer.
type walPut struct {
	bucket, key string
	val         []byte
}

// Buckets makes the buckets in the base (synced) and lets Updates put in
// them.
func (w *walStorage) Buckets(names [][]byte) error {
	if err := w.base.Buckets(names); err != nil {
		return err
	}
	w.mu.Lock()
	for _, n := range names {
		w.buckets[string(n)] = true
	}
	w.mu.Unlock()
	return nil
}

// Update appends fn's puts to the log as one transaction, syncs the log
// once, and applies them to the memtable, all at once for Scan. It then
// starts a checkpoint if the file is full, after waiting for the last one
// if it still runs.
func (w *walStorage) Update(fn func(put func(bucket, key, value []byte) error) error) error {
	w.umu.Lock()
	defer w.umu.Unlock()
	w.mu.Lock()
	err, closed := w.err, w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	var (
		buf   []byte
		start int      // the open record's offset in buf
		offs  [][2]int // each put's value: offset and length in buf
		puts  []walPut
	)
	open := func() {
		start = len(buf)
		buf = append(buf, make([]byte, walRecHeader+1)...)
	}
	closeRec := func(last bool) {
		if last {
			buf[start+walRecHeader] = walLast
		}
		p := buf[start+walRecHeader:]
		binary.BigEndian.PutUint32(buf[start:], uint32(len(p)))
		binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(p, walCRC))
		binary.BigEndian.PutUint32(buf[start+8:], crc32.Checksum(buf[start:start+8], walCRC))
	}
	open()
	err = fn(func(bucket, key, value []byte) error {
		w.mu.Lock()
		ok := w.buckets[string(bucket)]
		w.mu.Unlock()
		if !ok {
			return fmt.Errorf("no bucket %s", bucket)
		}
		n := 3*binary.MaxVarintLen32 + len(bucket) + len(key) + len(value)
		if n+1 > walMaxRecord {
			return fmt.Errorf("wal: a put of %d bytes is larger than a log record (%d)", n, walMaxRecord)
		}
		if int64(len(buf)+n+walRecHeader+1) > w.opt.maxUpdate {
			return fmt.Errorf("wal: an Update of more than %d bytes is larger than the log takes", w.opt.maxUpdate)
		}
		if len(buf)-start+n > walChunk && len(buf)-start > walRecHeader+1 {
			closeRec(false)
			open()
		}
		buf = binary.AppendUvarint(buf, uint64(len(bucket)))
		buf = append(buf, bucket...)
		buf = binary.AppendUvarint(buf, uint64(len(key)))
		buf = append(buf, key...)
		buf = binary.AppendUvarint(buf, uint64(len(value)))
		offs = append(offs, [2]int{len(buf), len(value)})
		buf = append(buf, value...)
		puts = append(puts, walPut{bucket: string(bucket), key: string(key)})
		return nil
	})
	if err != nil {
		return err
	}
	if len(puts) == 0 {
		return nil
	}
	closeRec(true)
	for i := range puts {
		puts[i].val = buf[offs[i][0] : offs[i][0]+offs[i][1] : offs[i][0]+offs[i][1]]
	}
	n := int64(len(buf))
	if end := w.size + n; end > w.alloc && end < w.opt.checkpointBytes {
		// Zeros ahead, up to walPrealloc past the record (a torn write
		// of them reads as the torn tail it is).
		buf = append(buf, make([]byte, min(end+walPrealloc, w.opt.checkpointBytes)-end)...)
	}
	if _, err = w.file.WriteAt(buf, w.size); err == nil {
		err = fdatasync(w.file)
	}
	if err != nil {
		return w.stop(fmt.Errorf("wal: append to %s: %w", w.file.Name(), err))
	}
	w.alloc = max(w.alloc, w.size+int64(len(buf)))
	w.size += n
	w.mu.Lock()
	applyPuts(w.active, puts)
	w.maxBytes = max(w.maxBytes, w.size+w.frozenSz)
	w.mu.Unlock()
	if w.size >= w.opt.checkpointBytes {
		return w.rotate()
	}
	return nil
}

// applyPuts puts the puts in mt, in order.
func applyPuts(mt memtable, puts []walPut) {
	for _, p := range puts {
		t := mt[p.bucket]
		if t == nil {
			t = btree.NewG(32, walLess)
			mt[p.bucket] = t
		}
		t.ReplaceOrInsert(walItem{key: p.key, val: p.val})
	}
}

// stop makes err the log's final error.
func (w *walStorage) stop(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	return w.err
}

// rotate starts a new log file and a checkpoint of the full one, once
// the last checkpoint is done. Its caller holds umu.
func (w *walStorage) rotate() error {
	w.mu.Lock()
	for w.frozen != nil && w.err == nil {
		if h := w.opt.rotateWaits; h != nil {
			h()
		}
		w.cond.Wait()
	}
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return nil // the Update is durable; the next one reports the error
	}
	f, err := w.create(w.seq + 1)
	if err != nil {
		_ = w.stop(err)
		return nil
	}
	if err := w.file.Close(); err != nil {
		_ = f.Close()
		_ = w.stop(fmt.Errorf("wal: close %s: %w", w.file.Name(), err))
		return nil
	}
	full := w.seq
	w.mu.Lock()
	frozen := w.active
	w.frozen, w.active, w.frozenSz = frozen, memtable{}, w.size
	w.mu.Unlock()
	w.file, w.seq, w.size, w.alloc = f, w.seq+1, int64(walHeaderSize), int64(walHeaderSize)
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		w.endCheckpoint(w.checkpoint(frozen, full))
	}()
	return nil
}

// endCheckpoint drops the frozen memtable once its checkpoint is done. If
// the checkpoint failed, the log stops with err and the frozen memtable
// stays: the base may not hold it, and Scan must go on reading every
// acknowledged put (from the memtables, which hold exactly those) until
// the restart replays the log.
func (w *walStorage) endCheckpoint(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = err
		}
	} else {
		w.frozen, w.frozenSz = nil, 0
	}
	w.cond.Broadcast()
}

// checkpoint writes mt to the base in one synced transaction that also
// records seq as its checkpoint, then deletes the log files up to seq.
func (w *walStorage) checkpoint(mt memtable, seq uint64) error {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range mt {
			if !yield(n) {
				return
			}
		}
	})
	if h := w.opt.beforeCheckpoint; h != nil {
		h()
	}
	w.ckpt.Lock()
	err := w.base.Update(func(put func(bucket, key, value []byte) error) error {
		for _, n := range names {
			var err error
			mt[n].Ascend(func(it walItem) bool {
				err = put([]byte(n), []byte(it.key), it.val)
				return err == nil
			})
			if err != nil {
				return err
			}
		}
		return put(walBucket, checkpointKey, binary.BigEndian.AppendUint64(nil, seq))
	})
	w.ckpt.Unlock()
	if err != nil {
		return fmt.Errorf("wal: checkpoint %d: %w", seq, err)
	}
	if h := w.opt.afterCheckpoint; h != nil {
		if err := h(); err != nil {
			return err
		}
	}
	return w.removeLogs(seq)
}

// removeLogs deletes the log files up to seq.
func (w *walStorage) removeLogs(seq uint64) error {
	seqs, err := w.logFiles()
	if err != nil {
		return err
	}
	removed := false
	for _, s := range seqs {
		if s <= seq {
			if err := os.Remove(w.path(s)); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			removed = true
		}
	}
	if removed {
		// Not needed for correctness (a file that comes back is older
		// than the checkpoint, and skipped), but it keeps them gone.
		if err := syncDir(w.dir); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	return nil
}

// Scan reads the base overlaid with the memtables (the current one over
// the one being checkpointed): a snapshot of them taken at the start, so
// it sees all or nothing of an Update, and every Update that returned.
// It holds ckpt, shared, while fn runs: fn must not call Update or Scan
// (a checkpoint waiting for ckpt would wait for fn, and an Update for the
// checkpoint; a nested RLock waits behind a waiting Lock).
func (w *walStorage) Scan(bucket, after []byte, fn func(key, value []byte) (bool, error)) error {
	w.ckpt.RLock()
	defer w.ckpt.RUnlock()
	var layers []*btree.BTreeG[walItem] // newest first
	w.mu.Lock()
	if t := w.active[string(bucket)]; t != nil {
		layers = append(layers, t.Clone())
	}
	if t := w.frozen[string(bucket)]; t != nil {
		layers = append(layers, t) // not written to until it is dropped
	}
	w.mu.Unlock()
	next, stop := mergeLayers(layers, after)
	defer stop()
	pk, pv, ok := next()
	done := false
	var ferr error
	emit := func(k, v []byte) bool {
		more, err := fn(k, v)
		if err != nil || !more {
			done, ferr = true, err
			return false
		}
		return true
	}
	err := w.base.Scan(bucket, after, func(k, v []byte) (bool, error) {
		for ok && pk < string(k) {
			if !emit([]byte(pk), pv) {
				return false, nil
			}
			pk, pv, ok = next()
		}
		if ok && pk == string(k) {
			v = pv
			pk, pv, ok = next()
		}
		return emit(k, v), nil
	})
	if err != nil {
		return err
	}
	for !done && ok {
		if !emit([]byte(pk), pv) {
			break
		}
		pk, pv, ok = next()
	}
	return ferr
}

// mergeLayers iterates over the keys after after of the layers, in key
// order, a key's value from the first layer that has it.
func mergeLayers(layers []*btree.BTreeG[walItem], after []byte) (next func() (string, []byte, bool), stop func()) {
	type cursor struct {
		next func() (walItem, bool)
		stop func()
		it   walItem
		ok   bool
	}
	cs := make([]*cursor, len(layers))
	for i, t := range layers {
		seq := func(yield func(walItem) bool) {
			if after == nil {
				t.Ascend(yield)
				return
			}
			t.AscendGreaterOrEqual(walItem{key: string(after)}, func(it walItem) bool {
				return it.key == string(after) || yield(it)
			})
		}
		c := &cursor{}
		c.next, c.stop = iter.Pull(iter.Seq[walItem](seq))
		c.it, c.ok = c.next()
		cs[i] = c
	}
	next = func() (string, []byte, bool) {
		var best *cursor
		for _, c := range cs {
			if c.ok && (best == nil || c.it.key < best.it.key) {
				best = c
			}
		}
		if best == nil {
			return "", nil, false
		}
		it := best.it
		for _, c := range cs { // older layers' versions of the key are hidden
			for c.ok && c.it.key == it.key {
				c.it, c.ok = c.next()
			}
		}
		return it.key, it.val, true
	}
	stop = func() {
		for _, c := range cs {
			c.stop()
		}
	}
	return next, stop
}

// Close waits for the running checkpoint, checkpoints the rest (so that
// the next open replays nothing), and closes the log and the base.
func (w *walStorage) Close() error {
	w.umu.Lock()
	defer w.umu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	w.running.Wait()
	w.mu.Lock()
	err := w.err
	mt := w.active
	w.mu.Unlock()
	if err == nil && len(mt) > 0 {
		w.mu.Lock()
		w.frozen, w.active = mt, memtable{}
		w.mu.Unlock()
		err = w.checkpoint(mt, w.seq)
		w.endCheckpoint(err)
	}
	return errors.Join(err, w.file.Close(), w.base.Close())
}

// crash closes the files as a kill -9 would leave them: no checkpoint.
// For tests.
func (w *walStorage) crash() {
	w.umu.Lock()
	defer w.umu.Unlock()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.running.Wait()
	_ = w.file.Close()
	_ = w.base.Close()
}

// waitCheckpoint waits for the running checkpoint, if any. For tests.
func (w *walStorage) waitCheckpoint() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.frozen != nil && w.err == nil {
		w.cond.Wait()
	}
	return w.err
}

// logBytes is the total size of the log files.
func (w *walStorage) logBytes() (int64, error) {
	seqs, err := w.logFiles()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range seqs {
		fi, err := os.Stat(w.path(s))
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// replay reads log file seq into the active memtable. A record damaged at
// the end of the last file is a write that a crash tore: it was never
// acknowledged, and it is ignored with what follows it. Anywhere else it
// is an error that names the file and offset.
func (w *walStorage) replay(seq uint64, last bool) error {
	name := w.path(seq)
	data, err := w.readLog(name)
	if err != nil {
		return err
	}
	corrupt := func(off int, format string, args ...any) error {
		return fmt.Errorf("%w: %s at offset %d: %s", ErrWALCorrupt, name, off, fmt.Sprintf(format, args...))
	}
	if len(data) < walHeaderSize || string(data[:len(walMagic)]) != walMagic {
		if last && allZero(data[min(len(data), len(walMagic)):]) && isPrefixOrZero(data, []byte(walMagic)) {
			return nil // torn while it was being created
		}
		return corrupt(0, "not a log file header")
	}
	if s := binary.BigEndian.Uint64(data[len(walMagic):]); s != seq {
		return corrupt(len(walMagic), "the header says file %d", s)
	}
	var tx []walPut
	off := walHeaderSize
	for off < len(data) {
		p, bad, _ := walRecord(data, off)
		if bad != "" {
			if last && tornTail(data, off) {
				return nil
			}
			return corrupt(off, "%s", bad)
		}
		puts, flags, err := decodeRecord(p)
		if err != nil {
			return corrupt(off, "%v", err)
		}
		tx = append(tx, puts...)
		if flags&walLast != 0 {
			applyPuts(w.active, tx)
			tx = nil
		}
		off += walRecHeader + len(p)
	}
	if len(tx) > 0 && !last {
		return corrupt(off, "the last transaction has no end")
	}
	return nil // an unfinished transaction at the end of the last file was torn
}

// readLog reads a log file whole, if it is no larger than a log file gets:
// checkpointBytes (past which it is rotated) and one Update.
func (w *walStorage) readLog(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	limit := w.opt.checkpointBytes + w.opt.maxUpdate
	tooLarge := func(n int64) error {
		return fmt.Errorf("%w: %s is %d bytes, larger than a log file gets (%d)", ErrWALCorrupt, name, n, limit)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	if fi.Size() > limit {
		return nil, tooLarge(fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("wal: read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(int64(len(data)))
	}
	return data, nil
}

// walRecord returns the payload of the record at off, or why it is bad,
// and whether its header is sound (its length can be trusted).
func walRecord(data []byte, off int) (p []byte, bad string, hdrOK bool) {
	if len(data)-off < walRecHeader {
		return nil, "short record header", false
	}
	if crc32.Checksum(data[off:off+8], walCRC) != binary.BigEndian.Uint32(data[off+8:]) {
		return nil, "record header checksum mismatch", false
	}
	n := int(binary.BigEndian.Uint32(data[off:]))
	if n == 0 || n > walMaxRecord {
		return nil, fmt.Sprintf("record length %d out of bounds", n), false
	}
	if n > len(data)-off-walRecHeader {
		return nil, fmt.Sprintf("record of %d bytes past the end of the file", n), true
	}
	p = data[off+walRecHeader : off+walRecHeader+n]
	if crc32.Checksum(p, walCRC) != binary.BigEndian.Uint32(data[off+4:]) {
		return nil, "checksum mismatch", true
	}
	return p, "", true
}

// tornTail tells whether the bad record at off can be the last write of
// the file, torn by a crash: what follows it is only zeros (blocks the
// file grew by and that were not written) or records whose headers are
// sound (a damaged header is corruption, not a cut) and of which none,
// sound, ends a transaction: not what an earlier, synced Update leaves.
func tornTail(data []byte, off int) bool {
	for off < len(data) {
		if allZero(data[off:]) || len(data)-off < walRecHeader {
			return true
		}
		p, bad, hdrOK := walRecord(data, off)
		if !hdrOK {
			return false
		}
		if bad == "" && p[0]&walLast != 0 {
			return false // a whole transaction follows
		}
		off += walRecHeader + int(binary.BigEndian.Uint32(data[off:]))
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isPrefixOrZero tells whether b's first bytes are a prefix of want, or
// zeros.
func isPrefixOrZero(b, want []byte) bool {
	b = b[:min(len(b), len(want))]
	return allZero(b) || bytes.HasPrefix(want, b)
}

// decodeRecord reads a record's payload; every length is checked against
// what is left.
func decodeRecord(p []byte) ([]walPut, byte, error) {
	flags, p := p[0], p[1:]
	var puts []walPut
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, io.ErrUnexpectedEOF
		}
		f := p[k : k+int(n)]
		p = p[k+int(n):]
		return f, nil
	}
	for len(p) > 0 {
		b, err := field()
		if err != nil {
			return nil, 0, fmt.Errorf("bucket: %w", err)
		}
		k, err := field()
		if err != nil {
			return nil, 0, fmt.Errorf("key: %w", err)
		}
		v, err := field()
		if err != nil {
			return nil, 0, fmt.Errorf("value: %w", err)
		}
		puts = append(puts, walPut{bucket: string(b), key: string(k), val: v})
	}
	return puts, flags, nil
}
