package kvstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Both storages behave alike: buckets, atomic updates, scans in key
// order after a key, early stops, errors.
func TestStorageConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) Storage
	}{
		{"bolt", func(t *testing.T) Storage {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return boltStorage{db}
		}},
		{"mem", func(*testing.T) Storage { return NewMemDisk() }},
		{"wal over bolt (the store's)", func(t *testing.T) Storage {
			st, err := openStore(filepath.Join(t.TempDir()), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
		{"wal over mem, a checkpoint each update", func(t *testing.T) Storage {
			w, err := openWAL(t.TempDir(), NewMemDisk(), walOptions{checkpointBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Close() })
			return w
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.open(t)
			a, b := []byte("a"), []byte("b")
			if err := st.Buckets([][]byte{a, b}); err != nil {
				t.Fatal(err)
			}
			put := func(bucket []byte, kvs ...string) error {
				return st.Update(func(put func(bucket, key, value []byte) error) error {
					for i := 0; i < len(kvs); i += 2 {
						if err := put(bucket, []byte(kvs[i]), []byte(kvs[i+1])); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := put(a, "k3", "3", "k1", "1", "k2", "2"); err != nil {
				t.Fatal(err)
			}
			if err := put(b, "k1", "b1"); err != nil {
				t.Fatal(err)
			}
			if err := put(a, "k1", "1'"); err != nil {
				t.Fatal(err)
			}
			if err := put([]byte("nope"), "k", "v"); err == nil {
				t.Fatal("a put to a bucket never made succeeded")
			}
			boom := errors.New("boom")
			err := st.Update(func(put func(bucket, key, value []byte) error) error {
				if err := put(a, []byte("k9"), []byte("9")); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("a failed transaction returned %v", err)
			}
			scan := func(bucket []byte, after []byte, limit int) []string {
				var out []string
				err := st.Scan(bucket, after, func(k, v []byte) (bool, error) {
					out = append(out, string(k)+"="+string(v))
					return len(out) < limit, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			for _, c := range []struct {
				after []byte
				limit int
				want  []string
			}{
				{nil, 10, []string{"k1=1'", "k2=2", "k3=3"}}, // k9's transaction failed: none of it
				{[]byte(""), 10, []string{"k1=1'", "k2=2", "k3=3"}},
				{[]byte("k1"), 10, []string{"k2=2", "k3=3"}},
				{[]byte("k15"), 10, []string{"k2=2", "k3=3"}},
				{[]byte("k3"), 10, nil},
				{nil, 2, []string{"k1=1'", "k2=2"}},
			} {
				if got := scan(a, c.after, c.limit); !slices.Equal(got, c.want) {
					t.Errorf("scan after %q limit %d: %v, want %v", c.after, c.limit, got, c.want)
				}
			}
			if got := scan(b, nil, 10); !slices.Equal(got, []string{"k1=b1"}) {
				t.Errorf("bucket b: %v", got)
			}
			if err := st.Scan([]byte("nope"), nil, func(k, v []byte) (bool, error) { return true, nil }); err == nil {
				t.Error("a scan of a bucket never made succeeded")
			}
			stop := errors.New("stop")
			if err := st.Scan(a, nil, func(k, v []byte) (bool, error) { return true, stop }); !errors.Is(err, stop) {
				t.Errorf("a scan whose function failed returned %v", err)
			}
		})
	}
}

// A store on a MemDisk that its daemon loses without closing it (a
// crash) comes back, on a new node with the same address and the same
// disk, with every acknowledged write; a write whose commit failed (a
// disk error) was not acknowledged and is not there.
func TestMemDiskAcrossACrash(t *testing.T) {
	disk := NewMemDisk()
	tn := newTestNode(t, "a")
	addr := tn.node.Addr()
	cfg := Config{Storage: disk, Token: "t", Shards: 4, Replicas: 1}
	st := tn.install(t, cfg)
	cl := newClient(t, tn.sys, LocalTable(st))
	for i := range 20 {
		mustPut(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	syncs := disk.Syncs()
	disk.SetFail(true)
	if err := cl.Put(ctxT(t), "lost", []byte("x")); err == nil {
		t.Fatal("a put acknowledged while the disk failed every write")
	}
	disk.SetFail(false)
	if disk.Syncs() != syncs {
		t.Fatalf("%d syncs while the disk failed", disk.Syncs()-syncs)
	}
	m, err := LoadReplica(disk, ShardOf("k7", 4))
	if err != nil || string(m["k7"].V) != "v7" || m["k7"].TS.IsZero() {
		t.Fatalf("LoadReplica: k7 = %+v, %v", m["k7"], err)
	}
	// The crash: the node goes without Store.Close.
	tn.store = nil
	tn.close()
	back := newTestNodeAt(t, "a", addr)
	st2 := back.install(t, cfg)
	cl2 := newClient(t, back.sys, LocalTable(st2))
	for i := range 20 {
		mustGet(t, cl2, fmt.Sprint("k", i), fmt.Sprint("v", i), true)
	}
	mustGet(t, cl2, "lost", "", false)
	if err := st2.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The store does not close a storage it was given.
	if err := disk.Update(func(func(bucket, key, value []byte) error) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
