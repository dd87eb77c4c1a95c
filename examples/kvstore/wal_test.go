package kvstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var walTestBuckets = [][]byte{[]byte("a"), []byte("b")}

// openTestWAL opens the log of dir in front of a bbolt file in dir.
func openTestWAL(t testing.TB, dir string, opt walOptions) (*walStorage, error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "base.db"), 0o600, &bolt.Options{Timeout: timeoutOpen})
	if err != nil {
		t.Fatal(err)
	}
	w, err := openWAL(dir, boltStorage{db}, opt)
	if err != nil {
		return nil, err
	}
	if err := w.Buckets(walTestBuckets); err != nil {
		t.Fatal(err)
	}
	return w, nil
}

func mustOpenWAL(t testing.TB, dir string, opt walOptions) *walStorage {
	t.Helper()
	w, err := openTestWAL(t, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// putKVs writes kvs (key, value, key, value...) to bucket in one Update.
func putKVs(st Storage, bucket string, kvs ...string) error {
	return st.Update(func(put func(bucket, key, value []byte) error) error {
		for i := 0; i < len(kvs); i += 2 {
			if err := put([]byte(bucket), []byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

func mustPutKVs(t testing.TB, st Storage, bucket string, kvs ...string) {
	t.Helper()
	if err := putKVs(st, bucket, kvs...); err != nil {
		t.Fatal(err)
	}
}

// scanAll returns bucket's entries as "k=v", in Scan's order.
func scanAll(t testing.TB, st Storage, bucket string, after []byte) []string {
	t.Helper()
	var out []string
	err := st.Scan([]byte(bucket), after, func(k, v []byte) (bool, error) {
		out = append(out, string(k)+"="+string(v))
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// walRecordOffsets returns the offsets of the records of a log file.
func walRecordOffsets(t *testing.T, data []byte) []int {
	t.Helper()
	var offs []int
	for off := walHeaderSize; off < len(data) && !allZero(data[off:]); {
		offs = append(offs, off)
		off += walRecHeader + int(binary.BigEndian.Uint32(data[off:]))
	}
	return offs
}

// After a crash (no checkpoint: nothing of the log is in the base), the
// log is replayed on open: every Update that returned is there. After a
// clean close, the log was checkpointed: the next open has nothing to
// replay and finds everything in the base.
func TestWALReplay(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		dir := t.TempDir()
		w := mustOpenWAL(t, dir, walOptions{})
		for i := range 50 {
			mustPutKVs(t, w, "a", fmt.Sprint("k", i%20), fmt.Sprint("v", i), fmt.Sprint("x", i), "1")
		}
		mustPutKVs(t, w, "b", "k", "b")
		w.crash()
		w2 := mustOpenWAL(t, dir, walOptions{})
		defer w2.Close()
		got := scanAll(t, w2, "a", nil)
		if len(got) != 70 || !slices.Contains(got, "k19=v39") || !slices.Contains(got, "k0=v40") || !slices.Contains(got, "x49=1") {
			t.Fatalf("after the replay: %d entries %v", len(got), got)
		}
		if got := scanAll(t, w2, "b", nil); !slices.Equal(got, []string{"k=b"}) {
			t.Fatalf("bucket b: %v", got)
		}
		// The replay was checkpointed: the base alone holds it all.
		if got := scanAll(t, w2.base, "a", nil); len(got) != 70 {
			t.Fatalf("the base holds %d entries after the open", len(got))
		}
	})
	t.Run("clean close", func(t *testing.T) {
		dir := t.TempDir()
		w := mustOpenWAL(t, dir, walOptions{})
		mustPutKVs(t, w, "a", "k1", "v1", "k2", "v2")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := putKVs(w, "a", "k3", "v3"); !errors.Is(err, ErrClosed) {
			t.Fatalf("an Update after Close returned %v", err)
		}
		// Close checkpointed: the base alone holds the writes.
		db, err := bolt.Open(filepath.Join(dir, "base.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, boltStorage{db}, "a", nil); !slices.Equal(got, []string{"k1=v1", "k2=v2"}) {
			t.Fatalf("the base after a clean close: %v", got)
		}
		_ = db.Close()
		w2 := mustOpenWAL(t, dir, walOptions{})
		defer w2.Close()
		if got := scanAll(t, w2, "a", nil); !slices.Equal(got, []string{"k1=v1", "k2=v2"}) {
			t.Fatalf("after a clean close: %v", got)
		}
	})
}

// A crash that tears the last append (a power loss before its fdatasync
// returned: never acknowledged) leaves a log whose end is damaged: cut
// anywhere, grown by zeros, or with lost blocks. The open ignores it and
// finds every Update before it.
func TestWALTornTail(t *testing.T) {
	src := t.TempDir()
	w := mustOpenWAL(t, src, walOptions{})
	mustPutKVs(t, w, "a", "k1", "v1")
	mustPutKVs(t, w, "a", "k2", "v2", "k1", "v1'")
	mustPutKVs(t, w, "a", "k3", strings.Repeat("3", 5000), "k4", "v4")
	w.crash()
	log := w.path(1)
	file, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	// The records, then the zeros written ahead of them.
	data, ahead := file[:w.size], file[w.size:]
	if len(ahead) == 0 || !allZero(ahead) {
		t.Fatalf("%d bytes after the records, want zeros written ahead", len(ahead))
	}
	withAhead := func(b []byte) []byte { return append(slices.Clone(b), make([]byte, len(file)-len(b))...) }
	offs := walRecordOffsets(t, data)
	if len(offs) != 3 {
		t.Fatalf("%d records, want 3", len(offs))
	}
	last := offs[2]
	zeroMiddle := slices.Clone(data)
	clear(zeroMiddle[last+walRecHeader+100 : last+walRecHeader+4196])
	flipped := slices.Clone(data)
	flipped[len(flipped)-1] ^= 1
	cases := map[string][]byte{
		"cut in the header":          data[:last+5],
		"cut after the header":       data[:last+walRecHeader],
		"cut in the payload":         data[:last+walRecHeader+2000],
		"cut before the last byte":   data[:len(data)-1],
		"a lost block in the middle": zeroMiddle,
		"a damaged last byte":        flipped,
		"a header of zeros":          append(slices.Clone(data[:last]), make([]byte, 4096)...),
		// The same in a file with zeros ahead of its records.
		"cut in the payload, zeros ahead":   withAhead(data[:last+walRecHeader+2000]),
		"a damaged last byte, zeros ahead":  withAhead(flipped),
		"a lost block in the middle, ahead": withAhead(zeroMiddle),
		"cut after the header, zeros ahead": withAhead(data[:last+walRecHeader]),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(src, "base.db"), filepath.Join(dir, "base.db"))
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(log)), content, 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := openTestWAL(t, dir, walOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if got := scanAll(t, w, "a", nil); !slices.Equal(got, []string{"k1=v1'", "k2=v2"}) {
				t.Fatalf("after a torn append: %v", got)
			}
			// The next file goes on after the torn one, which is gone.
			mustPutKVs(t, w, "a", "k5", "v5")
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(log))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the torn log is still there: %v", err)
			}
		})
	}
	// Zeros after a whole last record (blocks the file grew by): it is
	// there.
	t.Run("zeros after the end", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join(src, "base.db"), filepath.Join(dir, "base.db"))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(log)), append(slices.Clone(data), make([]byte, 3000)...), 0o600); err != nil {
			t.Fatal(err)
		}
		w := mustOpenWAL(t, dir, walOptions{})
		defer w.Close()
		if got := scanAll(t, w, "a", nil); len(got) != 4 {
			t.Fatalf("after a log grown by zeros: %v", got)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A damaged record before the end of the log (acknowledged data followed
// by more) is not a torn append: the open fails with ErrWALCorrupt, the
// file and the offset, instead of dropping what follows or reading a
// damaged value.
func TestWALCorruptRecord(t *testing.T) {
	src := t.TempDir()
	w := mustOpenWAL(t, src, walOptions{})
	mustPutKVs(t, w, "a", "k1", "v1")
	mustPutKVs(t, w, "a", "k2", "v2")
	mustPutKVs(t, w, "a", "k3", "v3")
	w.crash()
	log := w.path(1)
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	offs := walRecordOffsets(t, data)
	mid := offs[1]
	damage := map[string]func(b []byte){
		"a value":                func(b []byte) { b[mid+walRecHeader+8] ^= 0x20 },
		"a length":               func(b []byte) { b[mid+3]++ },
		"a length out of bounds": func(b []byte) { binary.BigEndian.PutUint32(b[mid:], 0xffffffff) },
		"a checksum":             func(b []byte) { b[mid+5] ^= 1 },
		"the file header":        func(b []byte) { b[2] = 'x' },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(src, "base.db"), filepath.Join(dir, "base.db"))
			b := slices.Clone(data)
			f(b)
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(log)), b, 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := openTestWAL(t, dir, walOptions{})
			if err == nil {
				got := scanAll(t, w, "a", nil)
				_ = w.Close()
				t.Fatalf("opened a log with a damaged record: %v", got)
			}
			want := fmt.Sprintf("offset %d", mid)
			if name == "the file header" {
				want = "offset 0"
			}
			if !errors.Is(err, ErrWALCorrupt) || !strings.Contains(err.Error(), filepath.Base(log)) || !strings.Contains(err.Error(), want) {
				t.Fatalf("open: %v; want ErrWALCorrupt naming %s and %s", err, filepath.Base(log), want)
			}
		})
	}
}

// A checkpoint writes the log to the base and deletes its files; the log
// on disk stays under two files' worth while the writes go on, even when a
// checkpoint is slow (the Update that would start a third file waits).
func TestWALCheckpointBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var once sync.Once
	var waits, checkpoints atomic.Int32
	const cp = 4 << 10
	opt := walOptions{
		checkpointBytes: cp,
		afterCheckpoint: func() error {
			checkpoints.Add(1)
			<-release // the first checkpoint waits until an Update waits for it
			return nil
		},
		rotateWaits: func() {
			waits.Add(1)
			once.Do(func() { close(release) })
		},
	}
	w := mustOpenWAL(t, dir, opt)
	val := strings.Repeat("v", 200)
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := putKVs(w, "a", fmt.Sprintf("k%04d", i), val); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) })
	if waits.Load() == 0 {
		t.Error("no Update waited for a slow checkpoint")
	}
	w.mu.Lock()
	peak := w.maxBytes
	w.mu.Unlock()
	// Two files, each up to cp and one more record.
	if bound := int64(2 * (cp + walHeaderSize + walRecHeader + 300)); peak > bound {
		t.Errorf("the log reached %d bytes, bound %d", peak, bound)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if checkpoints.Load() < 5 {
		t.Errorf("%d checkpoints for %d bytes of log", checkpoints.Load(), n*200)
	}
	if n, err := w.logBytes(); err != nil || n > int64(walHeaderSize) {
		t.Fatalf("%d bytes of log after a clean close (%v)", n, err)
	}
	w2 := mustOpenWAL(t, dir, walOptions{})
	defer w2.Close()
	if got := scanAll(t, w2, "a", nil); len(got) != n {
		t.Fatalf("%d entries after the checkpoints, want %d", len(got), n)
	}
}

// A log file that a checkpoint covers is never replayed, even if its
// deletion was lost (a crash between the checkpoint and the deletion, or
// a power loss that undid it): replaying it would put back values older
// than what a later checkpoint wrote.
func TestWALSkipsCheckpointedLogs(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(t.TempDir(), "saved.log")
	var n atomic.Int32
	var w *walStorage
	opt := walOptions{checkpointBytes: 1, afterCheckpoint: func() error {
		if n.Add(1) == 1 { // keep the first file as it was before its deletion
			copyFile(t, w.path(1), saved)
		}
		return nil
	}}
	var err error
	if w, err = openTestWAL(t, dir, opt); err != nil {
		t.Fatal(err)
	}
	mustPutKVs(t, w, "a", "k", "old") // file 1, checkpointed
	mustPutKVs(t, w, "a", "k", "new") // file 2, checkpointed
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, saved, w.path(1))
	w2 := mustOpenWAL(t, dir, walOptions{})
	defer w2.Close()
	if got := scanAll(t, w2, "a", nil); !slices.Equal(got, []string{"k=new"}) {
		t.Fatalf("after a checkpointed log came back: %v", got)
	}
	if _, err := os.Stat(w.path(1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the checkpointed log is still there: %v", err)
	}
}

// A missing log file between the checkpoint and the last one is lost
// data: the open fails.
func TestWALMissingLog(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, walOptions{})
	mustPutKVs(t, w, "a", "k", "1")
	w.crash()
	// File 3 after file 1: file 2 is lost.
	b, err := os.ReadFile(w.path(1))
	if err != nil {
		t.Fatal(err)
	}
	// As full files: no zeros ahead of the records.
	b = b[:w.size]
	if err := os.Truncate(w.path(1), w.size); err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(b[len(walMagic):], 3)
	if err := os.WriteFile(w.path(3), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openTestWAL(t, dir, walOptions{}); !errors.Is(err, ErrWALCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open with a missing log file: %v", err)
	}
}

// Scan reads the base overlaid with the log's pending entries, both the
// current ones and those a checkpoint is writing: newest value of each
// key, in key order, after a key, stopping early.
func TestWALScanMergesPending(t *testing.T) {
	dir := t.TempDir()
	block := make(chan struct{})
	var armed atomic.Bool
	w := mustOpenWAL(t, dir, walOptions{checkpointBytes: 1, beforeCheckpoint: func() {
		if armed.Load() {
			<-block // the frozen table is not in the base yet
		}
	}})
	// The base: k1, k3, k5 (checkpointed at once).
	mustPutKVs(t, w, "a", "k1", "base", "k3", "base", "k5", "base")
	if err := w.waitCheckpoint(); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	mustPutKVs(t, w, "a", "k0", "frozen")                                 // its checkpoint is blocked
	w.opt.checkpointBytes = 1 << 20                                       // Update alone reads it
	mustPutKVs(t, w, "a", "k3", "active", "k4", "active", "k6", "active") // pending in the current file
	mustPutKVs(t, w, "b", "z", "b")
	w.mu.Lock()
	frozen, active := w.frozen != nil, len(w.active) > 0
	w.mu.Unlock()
	if !frozen || !active {
		t.Fatalf("frozen %v active %v: the test needs both", frozen, active)
	}
	want := []string{"k0=frozen", "k1=base", "k3=active", "k4=active", "k5=base", "k6=active"}
	check := func(stage string) {
		if got := scanAll(t, w, "a", nil); !slices.Equal(got, want) {
			t.Errorf("%s: scan %v, want %v", stage, got, want)
		}
		if got := scanAll(t, w, "a", []byte("k3")); !slices.Equal(got, want[3:]) {
			t.Errorf("%s: scan after k3: %v", stage, got)
		}
		if got := scanAll(t, w, "a", []byte("k35")); !slices.Equal(got, want[3:]) {
			t.Errorf("%s: scan after k35: %v", stage, got)
		}
		var some []string
		err := w.Scan([]byte("a"), nil, func(k, v []byte) (bool, error) {
			some = append(some, string(k))
			return len(some) < 3, nil
		})
		if err != nil || !slices.Equal(some, []string{"k0", "k1", "k3"}) {
			t.Errorf("%s: a scan stopped at 3: %v %v", stage, some, err)
		}
		if got := scanAll(t, w, "b", nil); !slices.Equal(got, []string{"z=b"}) {
			t.Errorf("%s: bucket b: %v", stage, got)
		}
	}
	check("pending")
	close(block)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpenWAL(t, dir, walOptions{})
	defer w.Close()
	check("reopened")
}

// While Updates, rotations and checkpoints run, every Scan sees all or
// nothing of each Update (all of one Update's keys carry its number) and
// every Update that returned before it started.
func TestWALScanAtomicUnderCheckpoints(t *testing.T) {
	w := mustOpenWAL(t, t.TempDir(), walOptions{checkpointBytes: 2 << 10})
	defer w.Close()
	const keys, updates = 8, 400
	var returned atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= updates; i++ {
			kvs := make([]string, 0, 2*keys)
			for k := range keys {
				kvs = append(kvs, fmt.Sprint("k", k), fmt.Sprintf("%06d", i))
			}
			if err := putKVs(w, "a", kvs...); err != nil {
				done <- err
				return
			}
			returned.Store(int64(i))
		}
		done <- nil
	}()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		min := returned.Load()
		got := scanAll(t, w, "a", nil)
		if min == 0 && len(got) == 0 {
			continue
		}
		if len(got) != keys {
			t.Fatalf("a scan saw %d keys: %v", len(got), got)
		}
		v := strings.SplitN(got[0], "=", 2)[1]
		for _, e := range got {
			if strings.SplitN(e, "=", 2)[1] != v {
				t.Fatalf("a scan saw part of an Update: %v", got)
			}
		}
		if n := atoiT(t, v); int64(n) < min {
			t.Fatalf("a scan saw Update %d after Update %d returned", n, min)
		}
	}
}

func atoiT(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A failed append stops the log for good: later Updates fail too (an
// fsync that failed is not retried), and what returned is still there
// after a restart.
func TestWALStopsAfterAWriteError(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, walOptions{})
	mustPutKVs(t, w, "a", "k1", "v1")
	_ = w.file.Close() // the next write fails
	if err := putKVs(w, "a", "k2", "v2"); err == nil {
		t.Fatal("an Update on a closed log file succeeded")
	}
	if err := putKVs(w, "a", "k3", "v3"); err == nil || !strings.Contains(err.Error(), "append") {
		t.Fatalf("the Update after a failed one: %v", err)
	}
	w.crash()
	w2 := mustOpenWAL(t, dir, walOptions{})
	defer w2.Close()
	if got := scanAll(t, w2, "a", nil); !slices.Equal(got, []string{"k1=v1"}) {
		t.Fatalf("after the failure: %v", got)
	}
}

// BenchmarkWALReopen measures the open of a daemon's storage after a
// crash with a full log file (16 MiB, ~90 k puts of 100-byte values in
// rounds of 45, over a bbolt file): the replay and its checkpoint, the
// bound on a restart's extra time. ns/op is one open.
func BenchmarkWALReopen(b *testing.B) {
	dir := b.TempDir()
	w := mustOpenWAL(b, dir, walOptions{checkpointBytes: 1 << 40})
	val := strings.Repeat("v", 118) // an entry's header and a 100-byte value
	n := 0
	for w.size < defaultCheckpointBytes {
		kvs := make([]string, 0, 90)
		for range 45 {
			kvs = append(kvs, fmt.Sprintf("key-%09d", n*7919%1000003), val)
			n++
		}
		mustPutKVs(b, w, "a", kvs...)
	}
	w.crash()
	log, err := os.ReadFile(w.path(1))
	if err != nil {
		b.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(dir, "base.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		d := b.TempDir()
		if err := os.WriteFile(filepath.Join(d, "base.db"), base, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, filepath.Base(w.path(1))), log, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w2 := mustOpenWAL(b, d, walOptions{})
		b.StopTimer()
		w2.crash()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "puts")
}

// A store on a data dir whose daemon dies without closing it (kill -9:
// nothing checkpointed, the writes only in the log) comes back with every
// acknowledged write, from the log.
func TestStoreReplaysItsLogAfterACrash(t *testing.T) {
	dir := t.TempDir()
	tn := newTestNode(t, "a")
	cfg := Config{DataDir: dir, Shards: 4, Replicas: 1}
	st := tn.install(t, cfg)
	cl := newClient(t, tn.sys, LocalTable(st))
	for i := range 30 {
		mustPut(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	w, ok := st.db.(*walStorage)
	if !ok {
		t.Fatalf("the store's storage is a %T, not the log", st.db)
	}
	w.crash() // the files as a kill -9 leaves them
	tn.close()
	// bbolt alone does not have them: they are in the log only.
	db, err := bolt.Open(filepath.Join(dir, "kvstore", storeFile), 0o600, &bolt.Options{Timeout: timeoutOpen})
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadReplica(boltStorage{db}, ShardOf("k7", 4))
	_ = db.Close()
	if err != nil || len(m) != 0 {
		t.Fatalf("bbolt holds %d entries before the replay (%v)", len(m), err)
	}
	back := newTestNode(t, "a")
	st2 := back.install(t, cfg)
	cl2 := newClient(t, back.sys, LocalTable(st2))
	for i := range 30 {
		mustGet(t, cl2, fmt.Sprint("k", i), fmt.Sprint("v", i), true)
	}
}

// A daemon restarted many times without a write in between (and a log
// file that only has its header each time) opens every time, with what
// was written before.
func TestWALReopensIdle(t *testing.T) {
	t.Run("never written", func(t *testing.T) {
		dir := t.TempDir()
		for i := range 5 {
			w, err := openTestWAL(t, dir, walOptions{})
			if err != nil {
				t.Fatalf("open #%d: %v", i+1, err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close #%d: %v", i+1, err)
			}
		}
	})
	t.Run("written, then idle", func(t *testing.T) {
		dir := t.TempDir()
		w := mustOpenWAL(t, dir, walOptions{})
		mustPutKVs(t, w, "a", "k", "v")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		reopenClosing(t, dir, 4, []string{"k=v"})
	})
}

// reopenClosing opens the log in dir n times, each time finding want in
// bucket "a", and closes it.
func reopenClosing(t *testing.T, dir string, n int, want []string) {
	t.Helper()
	for i := range n {
		w, err := openTestWAL(t, dir, walOptions{})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if got := scanAll(t, w, "a", nil); !slices.Equal(got, want) {
			t.Fatalf("open #%d: %v, want %v", i+1, got, want)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// The same with crashes (kill -9: no Close) between the idle restarts,
// and between restarts with writes.
func TestWALReopensIdleAfterCrashes(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, walOptions{})
	mustPutKVs(t, w, "a", "k1", "v1")
	w.crash()
	want := []string{"k1=v1"}
	for i := range 6 {
		w, err := openTestWAL(t, dir, walOptions{})
		if err != nil {
			t.Fatalf("reopen #%d: %v", i+1, err)
		}
		if got := scanAll(t, w, "a", nil); !slices.Equal(got, want) {
			t.Fatalf("reopen #%d: %v, want %v", i+1, got, want)
		}
		if i == 3 { // one more write between the idle ones
			mustPutKVs(t, w, "a", "k2", "v2")
			want = append(want, "k2=v2")
		}
		if i%2 == 0 {
			w.crash()
		} else if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// An idle open interrupted at each of its steps (after its checkpoint is
// committed, before the files it covers are deleted; after they are
// deleted, before the next file is made; while that file is made) leaves
// a data dir that opens, again and again, with every write.
func TestWALIdleOpenInterrupted(t *testing.T) {
	errCrash := errors.New("crash")
	cases := map[string]func(t *testing.T, dir string, seq uint64){
		"after the checkpoint": func(t *testing.T, dir string, _ uint64) {
			_, err := openTestWAL(t, dir, walOptions{afterCheckpoint: func() error { return errCrash }})
			if !errors.Is(err, errCrash) {
				t.Fatalf("the interrupted open: %v", err)
			}
		},
		"after the deletion": func(t *testing.T, dir string, seq uint64) {
			w := mustOpenWAL(t, dir, walOptions{})
			w.crash()
			if err := os.Remove(w.path(seq + 1)); err != nil {
				t.Fatal(err)
			}
		},
		"an empty next file": func(t *testing.T, dir string, seq uint64) {
			w := mustOpenWAL(t, dir, walOptions{})
			w.crash()
			if err := os.Truncate(w.path(seq+1), 0); err != nil {
				t.Fatal(err)
			}
		},
		"a next file cut in its header": func(t *testing.T, dir string, seq uint64) {
			w := mustOpenWAL(t, dir, walOptions{})
			w.crash()
			if err := os.Truncate(w.path(seq+1), 5); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, interrupt := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w := mustOpenWAL(t, dir, walOptions{})
			mustPutKVs(t, w, "a", "k", "v")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// An idle open and close: the next open finds file seq,
			// with no record, after the checkpoint.
			w = mustOpenWAL(t, dir, walOptions{})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			seq := w.seq
			if _, err := os.Stat(w.path(seq)); err != nil {
				t.Fatal(err)
			}
			interrupt(t, dir, seq)
			reopenClosing(t, dir, 3, []string{"k=v"})
		})
	}
}

// A daemon's store restarted twice with no write in between opens.
func TestStoreReopensIdle(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		st, err := openStore(dir, []int{0, 1})
		if err != nil {
			t.Fatalf("openStore #%d: %v", i+1, err)
		}
		if err := st.Close(); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
}

// failingBase is a Storage whose Updates fail once fail is set, as a full
// disk makes them.
type failingBase struct {
	Storage
	fail *atomic.Bool
}

var errNoSpace = errors.New("injected: no space left on device")

func (f failingBase) Update(fn func(put func(bucket, key, value []byte) error) error) error {
	if f.fail.Load() {
		return errNoSpace
	}
	return f.Storage.Update(fn)
}

// A checkpoint that fails stops the log (Updates fail) but Scan goes on
// reading every acknowledged put, not the older values of the base; a
// restart replays them.
func TestWALFailedCheckpointKeepsReads(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "base.db"), 0o600, &bolt.Options{Timeout: timeoutOpen})
	if err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	w, err := openWAL(dir, failingBase{boltStorage{db}, &fail}, walOptions{checkpointBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Buckets(walTestBuckets); err != nil {
		t.Fatal(err)
	}
	mustPutKVs(t, w, "a", "k1", "old") // checkpointed
	if err := w.waitCheckpoint(); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	mustPutKVs(t, w, "a", "k1", "new", "k2", "new") // acknowledged; its checkpoint fails
	if err := w.waitCheckpoint(); !errors.Is(err, errNoSpace) {
		t.Fatalf("the failed checkpoint: %v", err)
	}
	want := []string{"k1=new", "k2=new"}
	if got := scanAll(t, w, "a", nil); !slices.Equal(got, want) {
		t.Fatalf("after the failed checkpoint: %v, want %v", got, want)
	}
	if err := putKVs(w, "a", "k3", "v3"); !errors.Is(err, errNoSpace) {
		t.Fatalf("an Update after the failed checkpoint: %v", err)
	}
	w.crash()
	w2 := mustOpenWAL(t, dir, walOptions{})
	defer w2.Close()
	if got := scanAll(t, w2, "a", nil); !slices.Equal(got, want) {
		t.Fatalf("after the restart: %v, want %v", got, want)
	}
}

// A log file holds at most checkpointBytes and one Update: an Update
// larger than maxUpdate fails (and the log goes on), and the replay
// refuses a file larger than that instead of reading it into memory.
func TestWALBoundsLogFiles(t *testing.T) {
	const cp, maxUp = 4 << 10, 2 << 10
	opt := walOptions{checkpointBytes: cp, maxUpdate: maxUp}
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, opt)
	if err := putKVs(w, "a", "big", strings.Repeat("x", maxUp)); err == nil || !strings.Contains(err.Error(), "Update of more than") {
		t.Fatalf("an Update over the bound: %v", err)
	}
	mustPutKVs(t, w, "a", "k", strings.Repeat("y", maxUp-100))
	w.crash()
	log := w.path(w.seq)
	write := func(size int) {
		t.Helper()
		b := make([]byte, size) // a header, then zeros: a torn tail
		copy(b, binary.BigEndian.AppendUint64([]byte(walMagic), w.seq))
		if err := os.WriteFile(log, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cp + maxUp + 1)
	_, err := openTestWAL(t, dir, opt)
	if !errors.Is(err, ErrWALCorrupt) || !strings.Contains(err.Error(), filepath.Base(log)) || !strings.Contains(err.Error(), "larger than a log file gets") {
		t.Fatalf("open with an oversized log file: %v", err)
	}
	write(cp + maxUp)
	w2 := mustOpenWAL(t, dir, opt)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
}

// The file being written has zeros ahead of its records; a full file,
// rotated, has none (they stop at checkpointBytes, which the records
// pass), so a replay that finds a full file and the next one, both not
// checkpointed yet, reads both and every put.
func TestWALZerosAheadOnlyInTheLastFile(t *testing.T) {
	src := t.TempDir()
	const cp = 4 << 10
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w := mustOpenWAL(t, src, walOptions{checkpointBytes: cp, beforeCheckpoint: func() {
		once.Do(func() { close(hold) })
		<-release
	}})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
		_ = w.Close()
	}()
	val := strings.Repeat("v", 200)
	var want []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%03d", i)
		mustPutKVs(t, w, "a", k, val)
		want = append(want, k+"="+val)
		if w.seq == 2 && w.size > int64(walHeaderSize+cp/4) {
			break
		}
	}
	<-hold // the first file's checkpoint waits: the base holds none of it
	dst := t.TempDir()
	for _, name := range []string{"base.db", filepath.Base(w.path(1)), filepath.Base(w.path(2))} {
		copyFile(t, filepath.Join(src, name), filepath.Join(dst, name))
	}
	full, err := os.ReadFile(w.path(1))
	if err != nil {
		t.Fatal(err)
	}
	if offs := walRecordOffsets(t, full); len(offs) == 0 || allZero(full[len(full)-walRecHeader:]) {
		t.Fatalf("the full file (%d bytes) ends with zeros", len(full))
	}
	cur, err := os.ReadFile(w.path(2))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(cur)) <= w.size || !allZero(cur[w.size:]) {
		t.Fatalf("the file being written: %d bytes, its records end at %d: no zeros ahead", len(cur), w.size)
	}
	close(release)
	r := mustOpenWAL(t, dst, walOptions{checkpointBytes: cp})
	defer r.Close()
	if got := scanAll(t, r, "a", nil); !slices.Equal(got, want) {
		t.Fatalf("replayed %d puts, want %d", len(got), len(want))
	}
}

// BenchmarkLogSync is what a log round costs the disk: three goroutines
// (the demo's three daemons) each write 8 KiB to a file of their own and
// fdatasync it, appending (the file grows at every sync) or overwriting
// zeros written ahead (what the log does, walPrealloc). ns/op is per sync
// of one goroutine.
func BenchmarkLogSync(b *testing.B) {
	for _, ahead := range []bool{false, true} {
		name := "append"
		if ahead {
			name = "zeros-ahead"
		}
		b.Run(name, func(b *testing.B) {
			const writers, rec = 3, 8 << 10
			files := make([]*os.File, writers)
			for i := range files {
				f, err := os.Create(filepath.Join(b.TempDir(), "log"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if ahead {
					if _, err := f.Write(make([]byte, (b.N+1)*rec)); err != nil {
						b.Fatal(err)
					}
					if err := fdatasync(f); err != nil {
						b.Fatal(err)
					}
				}
				files[i] = f
			}
			buf := make([]byte, rec)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, f := range files {
				wg.Go(func() {
					for i := range b.N {
						if _, err := f.WriteAt(buf, int64(i)*rec); err != nil {
							b.Error(err)
							return
						}
						if err := fdatasync(f); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
