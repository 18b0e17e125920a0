package secrets_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

func TestRotateMaster(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	stored := storeEverything(t, a.keys)
	oldKey, oldID := readKeyFile(t, dir), a.keys.MasterKeyID()

	must(t, a.keys.RotateMaster(t.Context()))
	if a.keys.MasterKeyID() == oldID {
		t.Fatal("the master key id did not change")
	}
	stored.check(t, a.keys)
	if bytes.Equal(readKeyFile(t, dir), oldKey) {
		t.Fatal("master.key still holds the old key")
	}
	noNextKeyFile(t, dir)
	oneMasterKeySeals(t, a)
	a.stop()

	_, err := start(t, dir, secrets.Options{MasterKey: base64.StdEncoding.EncodeToString(oldKey)})
	if !errors.Is(err, secrets.ErrMasterKeyMismatch) {
		t.Fatalf("open with the retired key = %v, want ErrMasterKeyMismatch", err)
	}
	stored.check(t, mustStart(t, dir, inDataDir(dir)).keys)
}

var errCrash = errors.New("simulated crash")

// TestInterruptedMasterRotation stops a rotation part-way, as a crash would,
// checks the keyring still serves everything, then resumes the rotation by
// calling it again or by reopening.
func TestInterruptedMasterRotation(t *testing.T) {
	stops := []struct {
		name string
		stop func(step string, n int) bool
	}{
		{"after the first record", func(_ string, n int) bool { return n == 1 }},
		{"before the key file is replaced", func(step string, _ int) bool { return step == "rename" }},
	}
	for _, stop := range stops {
		for _, reopen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, resumed by reopening %v", stop.name, reopen), func(t *testing.T) {
				dir := t.TempDir()
				armed, steps := true, 0
				a := mustStart(t, dir, inDataDir(dir), func(k *secrets.Keyring) {
					secrets.SetRotationHook(k, func(step string) error {
						steps++
						if armed && stop.stop(step, steps) {
							return errCrash
						}
						return nil
					})
				})
				stored := storeEverything(t, a.keys)
				oldKey := readKeyFile(t, dir)

				if err := a.keys.RotateMaster(t.Context()); !errors.Is(err, errCrash) {
					t.Fatalf("rotation = %v, want it stopped by the simulated crash", err)
				}
				if !bytes.Equal(readKeyFile(t, dir), oldKey) {
					t.Fatal("master.key was replaced before the rotation finished")
				}
				newKey, err := os.ReadFile(filepath.Join(dir, secrets.MasterKeyFileName+".next"))
				must(t, err)

				// No downtime: reads and writes go on with both keys.
				stored.check(t, a.keys)
				must(t, a.keys.Put(t.Context(), "written/mid-rotation", []byte("mid")))
				mid, err := a.keys.Encrypt(t.Context(), "node-keys", []byte("mid"))
				must(t, err)

				armed = false
				if reopen {
					a.stop()
					a = mustStart(t, dir, inDataDir(dir))
				} else {
					must(t, a.keys.RotateMaster(t.Context()))
				}
				stored.check(t, a.keys)
				wantSecret(t, a.keys, "written/mid-rotation", "mid")
				wantPlain(t, a.keys, "node-keys", mid, "mid")
				if !bytes.Equal(readKeyFile(t, dir), newKey) {
					t.Fatal("master.key does not hold the key the rotation started with")
				}
				noNextKeyFile(t, dir)
				oneMasterKeySeals(t, a)
			})
		}
	}
}

// TestRotationResumesFromANewKeyFileAlone: a crash right after step 1
// leaves master.key.next and no record rewrapped.
func TestRotationResumesFromANewKeyFileAlone(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	stored := storeEverything(t, a.keys)
	a.stop()
	newKey := make([]byte, 32)
	rand.Read(newKey)
	must(t, os.WriteFile(filepath.Join(dir, secrets.MasterKeyFileName+".next"), newKey, 0o600))

	b := mustStart(t, dir, inDataDir(dir))
	stored.check(t, b.keys)
	if !bytes.Equal(readKeyFile(t, dir), newKey) {
		t.Fatal("Open did not finish the rotation to the new key file")
	}
	noNextKeyFile(t, dir)
	oneMasterKeySeals(t, b)
}

func TestRotateMasterWhileServing(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	ctx := t.Context()
	for i := range 50 {
		must(t, a.keys.Put(ctx, fmt.Sprintf("before/%d", i), []byte("x")))
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 40 {
				name := fmt.Sprintf("during/%d/%d", w, i)
				if err := a.keys.Put(ctx, name, []byte(name)); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				if got, err := a.keys.Get(ctx, name); err != nil || string(got) != name {
					t.Errorf("get %s = %q, %v", name, got, err)
					return
				}
				ct, err := a.keys.Encrypt(ctx, "busy", []byte(name))
				if err != nil {
					t.Errorf("encrypt: %v", err)
					return
				}
				if got, err := a.keys.Decrypt(ctx, "busy", ct); err != nil || string(got) != name {
					t.Errorf("decrypt = %q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := a.keys.RotateMaster(ctx); err != nil {
			t.Errorf("rotate: %v", err)
		}
	})
	wg.Wait()
	a.stop()

	b := mustStart(t, dir, inDataDir(dir))
	oneMasterKeySeals(t, b)
	for w := range 3 {
		for i := range 40 {
			name := fmt.Sprintf("during/%d/%d", w, i)
			wantSecret(t, b.keys, name, name)
		}
	}
	wantSecret(t, b.keys, "before/49", "x")
}

func TestRotateMasterNeedsAKeyFile(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	a := mustStart(t, t.TempDir(), secrets.Options{MasterKey: base64.StdEncoding.EncodeToString(key)})
	err := a.keys.RotateMaster(t.Context())
	if engine.ErrorCode(err) != engine.EUnsupported {
		t.Fatalf("rotation of a configured key = %v, want EUnsupported", err)
	}
}

func readKeyFile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, secrets.MasterKeyFileName))
	must(t, err)
	return b
}

func noNextKeyFile(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, secrets.MasterKeyFileName+".next")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("master.key.next is still there (%v)", err)
	}
}

// oneMasterKeySeals checks every record in the store names the same master
// key in its header (bytes 3 to 11: after the magic and the format).
func oneMasterKeySeals(t *testing.T, a *appliance) {
	t.Helper()
	names, err := a.store.ListSecrets(t.Context(), "keyring/")
	must(t, err)
	ids := map[string]bool{}
	for _, name := range names {
		blob, err := a.store.GetSecret(t.Context(), name)
		must(t, err)
		ids[string(blob[3:11])] = true
	}
	if len(ids) != 1 || len(names) == 0 {
		t.Fatalf("%d records sealed by %d master keys, want one key", len(names), len(ids))
	}
}
