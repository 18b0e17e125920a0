// Package certstoragetest is the conformance suite of certmagic.Storage on
// the Store adapters: the documented semantics of keys, directories and
// not-found errors, and locks that exclude holders across instances and
// expire when their holder dies.
package certstoragetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// Backend is one empty backing store, made for one test.
type Backend interface {
	// Instance returns a storage on the backend. Instances of one backend
	// share keys and locks, as the processes of one cluster do.
	Instance(t *testing.T) certmagic.Storage
	// Crash makes s stop renewing the locks it holds without releasing
	// them, as if its process had died.
	Crash(s certmagic.Storage)
	// LockTTL is how long a lock outlives its holder's last renewal.
	LockTTL() time.Duration
}

// Run runs the suite; newBackend makes a fresh backend for each test.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"MissingKeysAreNotExist", testMissing},
		{"StoreThenLoad", testStoreLoad},
		{"InvalidKeysAreRefused", testInvalidKeys},
		{"StatFilesAndDirectories", testStat},
		{"ExistsOnWholeComponents", testExists},
		{"List", testList},
		{"DeleteFileAndDirectory", testDelete},
		{"InstancesShareKeys", testShared},
		{"ConcurrentStores", testConcurrentStores},
		{"LockExcludesSecondHolder", testLockExcludes},
		{"LockExcludesAcrossInstances", testLockAcrossInstances},
		{"LockIsMutualExclusionUnderContention", testLockContention},
		{"LockHonoursContext", testLockContext},
		{"LocksAreIndependentByName", testLockNames},
		{"HeldLockOutlivesTTL", testLockRenewed},
		{"ExpiredLockIsTakenOver", testLockTakeover},
		{"UnlockReleasesOnlyItsOwnLock", testUnlockOwn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newBackend(t))
		})
	}
}

const (
	crt  = "certificates/acme/example.com/example.com.crt"
	key  = "certificates/acme/example.com/example.com.key"
	meta = "certificates/acme/example.com/example.com.json"
	acct = "acme/acme-v02/users/admin@example.com/admin.json"
)

func testMissing(t *testing.T, b Backend) {
	s := b.Instance(t)
	ctx := t.Context()
	mustStore(t, s, crt, "cert")
	for _, k := range []string{"nope", "certificates/acme/example.com/other.crt", "certificates/acme/exam"} {
		if _, err := s.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %v, want fs.ErrNotExist", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want fs.ErrNotExist", k, err)
		}
		if _, err := s.List(ctx, k, true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List(%q) = %v, want fs.ErrNotExist", k, err)
		}
		if s.Exists(ctx, k) {
			t.Errorf("Exists(%q) = true for a missing key", k)
		}
	}
}

func testStoreLoad(t *testing.T, b Backend) {
	s := b.Instance(t)
	mustStore(t, s, crt, "first")
	mustLoad(t, s, crt, "first")
	mustStore(t, s, crt, "second")
	mustLoad(t, s, crt, "second")

	got, _ := s.Load(t.Context(), crt)
	got[0] = 'X' // the caller owns what Load returns
	mustLoad(t, s, crt, "second")

	mustStore(t, s, key, "") // an empty file is still a file
	mustLoad(t, s, key, "")
}

func testInvalidKeys(t *testing.T, b Backend) {
	s := b.Instance(t)
	for _, k := range []string{"", "/abs", "dir/", "a//b"} {
		if err := s.Store(t.Context(), k, []byte("v")); err == nil {
			t.Errorf("Store(%q) succeeded, want an error", k)
		}
	}
}

func testStat(t *testing.T, b Backend) {
	s := b.Instance(t)
	before := time.Now().Add(-2 * time.Second) // tolerate a backend clock slightly behind
	mustStore(t, s, crt, "12345")
	ki, err := s.Stat(t.Context(), crt)
	if err != nil {
		t.Fatalf("Stat(file): %v", err)
	}
	if ki.Key != crt || !ki.IsTerminal || ki.Size != 5 {
		t.Errorf("Stat(file) = %+v, want key %s, terminal, size 5", ki, crt)
	}
	if ki.Modified.Before(before) || ki.Modified.After(time.Now().Add(2*time.Second)) {
		t.Errorf("Stat(file).Modified = %s, want about now", ki.Modified)
	}
	for _, dir := range []string{"certificates", "certificates/acme", "certificates/acme/example.com"} {
		ki, err := s.Stat(t.Context(), dir)
		if err != nil {
			t.Fatalf("Stat(%q): %v", dir, err)
		}
		if ki.Key != dir || ki.IsTerminal {
			t.Errorf("Stat(%q) = %+v, want a directory", dir, ki)
		}
	}
}

func testExists(t *testing.T, b Backend) {
	s := b.Instance(t)
	mustStore(t, s, crt, "c")
	for k, want := range map[string]bool{
		crt:                             true,
		"certificates":                  true,
		"certificates/acme/example.com": true,
		"certificates/acme/example":     false, // a prefix of a component is not a directory
		"certificates/acme/example.com/example.com": false,
		"acme": false,
	} {
		if got := s.Exists(t.Context(), k); got != want {
			t.Errorf("Exists(%q) = %v, want %v", k, got, want)
		}
	}
}

func testList(t *testing.T, b Backend) {
	s := b.Instance(t)
	for _, k := range []string{crt, key, meta, acct, "certificates/acme/example.org/example.org.crt", "certificatesX/other"} {
		mustStore(t, s, k, "v")
	}
	tests := []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"certificates/acme/example.com", false, []string{crt, meta, key}},
		{"certificates/acme/example.com", true, []string{crt, meta, key}},
		{"certificates", false, []string{"certificates/acme"}},
		{"certificates/acme", false, []string{"certificates/acme/example.com", "certificates/acme/example.org"}},
		{"certificates", true, []string{
			"certificates/acme",
			"certificates/acme/example.com", crt, meta, key,
			"certificates/acme/example.org", "certificates/acme/example.org/example.org.crt",
		}},
		{"acme/acme-v02/users", false, []string{"acme/acme-v02/users/admin@example.com"}},
	}
	for _, tc := range tests {
		got, err := s.List(t.Context(), tc.dir, tc.recursive)
		if err != nil {
			t.Errorf("List(%q, %v): %v", tc.dir, tc.recursive, err)
			continue
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("List(%q, %v) = %q, want %q", tc.dir, tc.recursive, got, want)
		}
	}
}

func testDelete(t *testing.T, b Backend) {
	s := b.Instance(t)
	ctx := t.Context()
	sibling := "certificates/acme/example.com.evil/x.crt" // shares a string prefix, not a directory
	for _, k := range []string{crt, key, meta, acct, sibling} {
		mustStore(t, s, k, "v")
	}
	if err := s.Delete(ctx, crt); err != nil {
		t.Fatalf("Delete(file): %v", err)
	}
	if s.Exists(ctx, crt) || !s.Exists(ctx, key) {
		t.Errorf("Delete(file) removed the wrong keys")
	}
	if err := s.Delete(ctx, "certificates/acme/example.com"); err != nil {
		t.Fatalf("Delete(dir): %v", err)
	}
	for _, k := range []string{key, meta, "certificates/acme/example.com"} {
		if s.Exists(ctx, k) {
			t.Errorf("after Delete(dir), %s still exists", k)
		}
	}
	mustLoad(t, s, sibling, "v")
	mustLoad(t, s, acct, "v")
	for _, k := range []string{crt, "never/stored"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%q) of a missing key = %v, want nil", k, err)
		}
	}
}

func testShared(t *testing.T, b Backend) {
	one, two := b.Instance(t), b.Instance(t)
	mustStore(t, one, crt, "from one")
	mustLoad(t, two, crt, "from one")
	if err := two.Delete(t.Context(), crt); err != nil {
		t.Fatal(err)
	}
	if one.Exists(t.Context(), crt) {
		t.Error("a key deleted by one instance still exists for the other")
	}
}

func testConcurrentStores(t *testing.T, b Backend) {
	s := b.Instance(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				k := fmt.Sprintf("certificates/acme/site%d/v%d", i, j)
				if err := s.Store(t.Context(), k, []byte(k)); err != nil {
					t.Errorf("Store(%s): %v", k, err)
				}
			}
		})
	}
	wg.Wait()
	got, err := s.List(t.Context(), "certificates/acme", true)
	if err != nil || len(got) != 8*6 {
		t.Errorf("List after concurrent stores: %d entries, %v; want 48", len(got), err)
	}
}

func testLockExcludes(t *testing.T, b Backend) {
	s := b.Instance(t)
	mustExclude(t, b, s, s)
}

func testLockAcrossInstances(t *testing.T, b Backend) {
	mustExclude(t, b, b.Instance(t), b.Instance(t))
}

// mustExclude checks second's Lock waits while first holds the lock and
// returns once first unlocks.
func mustExclude(t *testing.T, b Backend, first, second certmagic.Storage) {
	t.Helper()
	ctx := t.Context()
	mustLock(t, first, "issue_cert_example.com")
	got := lockAsync(ctx, second, "issue_cert_example.com")
	select {
	case err := <-got:
		t.Fatalf("second Lock returned while the first holds it: %v", err)
	case <-time.After(b.LockTTL() / 2):
	}
	if err := first.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	mustReturn(t, got, testenv.Patience+b.LockTTL())
	if err := second.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
}

func testLockContention(t *testing.T, b Backend) {
	var (
		wg                         sync.WaitGroup
		mu                         sync.Mutex
		inside, maxInside, entries int
	)
	for range 4 {
		s := b.Instance(t)
		wg.Go(func() {
			for range 3 {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				err := s.Lock(ctx, "renew_example.com")
				cancel()
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				mu.Lock()
				inside++
				entries++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				if err := s.Unlock(t.Context(), "renew_example.com"); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if maxInside != 1 || entries != 12 {
		t.Errorf("%d holders at once over %d entries, want 1 over 12", maxInside, entries)
	}
}

func testLockContext(t *testing.T, b Backend) {
	s := b.Instance(t)
	mustLock(t, s, "busy")
	ctx, cancel := context.WithTimeout(t.Context(), b.LockTTL()/4)
	defer cancel()
	if err := b.Instance(t).Lock(ctx, "busy"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock on a held lock with a deadline = %v, want context.DeadlineExceeded", err)
	}
}

func testLockNames(t *testing.T, b Backend) {
	s := b.Instance(t)
	mustLock(t, s, "a")
	mustLock(t, s, "b") // a different name is not blocked
	if err := s.Unlock(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), b.LockTTL()/4)
	defer cancel()
	if err := b.Instance(t).Lock(ctx, "a"); err == nil {
		t.Error("unlocking b released a")
	}
}

func testLockRenewed(t *testing.T, b Backend) {
	holder := b.Instance(t)
	mustLock(t, holder, "long job")
	ctx, cancel := context.WithTimeout(t.Context(), 2*b.LockTTL())
	defer cancel()
	if err := b.Instance(t).Lock(ctx, "long job"); err == nil {
		t.Fatal("a live holder's lock was taken over after its TTL")
	}
	if err := holder.Unlock(t.Context(), "long job"); err != nil {
		t.Fatalf("Unlock after renewals: %v", err)
	}
}

func testLockTakeover(t *testing.T, b Backend) {
	dead := b.Instance(t)
	mustLock(t, dead, "orphan")
	b.Crash(dead)
	got := lockAsync(t.Context(), b.Instance(t), "orphan")
	mustReturn(t, got, testenv.Patience+2*b.LockTTL())
}

func testUnlockOwn(t *testing.T, b Backend) {
	dead, heir := b.Instance(t), b.Instance(t)
	mustLock(t, dead, "job")
	b.Crash(dead)
	mustReturn(t, lockAsync(t.Context(), heir, "job"), testenv.Patience+2*b.LockTTL())
	_ = dead.Unlock(t.Context(), "job") // late: the lock is the heir's now
	ctx, cancel := context.WithTimeout(t.Context(), b.LockTTL()/4)
	defer cancel()
	if err := b.Instance(t).Lock(ctx, "job"); err == nil {
		t.Error("the former holder's Unlock released the heir's lock")
	}
	if err := heir.Unlock(t.Context(), "job"); err != nil {
		t.Errorf("heir Unlock: %v", err)
	}
}

func mustStore(t *testing.T, s certmagic.Storage, k, v string) {
	t.Helper()
	if err := s.Store(t.Context(), k, []byte(v)); err != nil {
		t.Fatalf("Store(%q): %v", k, err)
	}
}

func mustLoad(t *testing.T, s certmagic.Storage, k, want string) {
	t.Helper()
	got, err := s.Load(t.Context(), k)
	if err != nil {
		t.Fatalf("Load(%q): %v", k, err)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("Load(%q) = %q, want %q", k, got, want)
	}
}

func mustLock(t *testing.T, s certmagic.Storage, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testenv.Patience)
	defer cancel()
	if err := s.Lock(ctx, name); err != nil {
		t.Fatalf("Lock(%q): %v", name, err)
	}
}

func lockAsync(ctx context.Context, s certmagic.Storage, name string) <-chan error {
	got := make(chan error, 1)
	go func() { got <- s.Lock(ctx, name) }()
	return got
}

func mustReturn(t *testing.T, got <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
	case <-time.After(within):
		t.Fatalf("Lock still waiting after %s", within)
	}
}
