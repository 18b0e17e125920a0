package secrets

import (
	"context"
	"fmt"
	"io"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Master key rotation rewraps every record under a new master key while the
// keyring keeps serving. Its steps, and what a crash after each leaves:
//
//  1. The new key is written to master.key.next (atomically, mode 0600).
//     Crash: both files exist; the next Open loads both and resumes.
//  2. Each record sealed by the old key is opened and sealed again by the
//     new one, one at a time under the keyring's lock, so a concurrent write
//     of the same record cannot be lost. Writes made meanwhile are sealed by
//     the new key; reads pick the key named in each record's header.
//     Crash: records are mixed; both keys are on disk; Open resumes.
//  3. Once no record needs the old key, master.key.next is renamed over
//     master.key and the directory synced. Crash before the rename: Open
//     finds nothing left to rewrap and renames; after it: only the new key
//     exists and every record is sealed by it.
//
// Every step is idempotent, so resuming is running them again. The store
// makes each rewrapped record durable before the next step (bbolt and
// PostgreSQL commit synchronously). The old key is destroyed by the rename:
// backups of the store taken before the rotation need a backup of the old
// master.key. A key supplied in the configuration cannot be rotated here,
// as the keyring cannot write the new one back.

// RotateMaster rewraps every record under a new master key and replaces the
// key file. If it fails part-way (or the process dies), the keyring keeps
// working with both keys, and calling it again (or the next Open) finishes
// the rotation. Returns EUnsupported when the key came from the configuration.
func (k *Keyring) RotateMaster(ctx context.Context) error {
	k.rotating.Lock()
	defer k.rotating.Unlock()
	if err := k.startMasterRotation(ctx); err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	if err := k.finishMasterRotation(ctx); err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	return nil
}

// startMasterRotation writes the next key file, unless a rotation is under
// way already.
func (k *Keyring) startMasterRotation(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	if k.keyPath == "" {
		return engine.Errorf(engine.EUnsupported, "the master key was supplied in the configuration: "+
			"the keyring can only rotate a master key file")
	}
	if k.next != nil {
		return nil
	}
	raw := make([]byte, masterKeySize)
	defer engine.Zero(raw)
	if _, err := io.ReadFull(k.random, raw); err != nil {
		return fmt.Errorf("generate master key: %w", err)
	}
	next, err := newMasterKey(raw)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(k.nextKeyPath(), raw); err != nil {
		return fmt.Errorf("write the new master key file: %w", err)
	}
	k.next = next
	return nil
}

// finishMasterRotation rewraps what the old key still seals, then makes the
// new key the master key. Caller holds rotating.
func (k *Keyring) finishMasterRotation(ctx context.Context) error {
	names, err := k.store.ListSecrets(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	for _, name := range names {
		if err := k.rewrapRecord(ctx, name); err != nil {
			return err
		}
		if err := k.hook(name); err != nil {
			return err
		}
	}
	if err := k.hook("rename"); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := renameDurably(k.nextKeyPath(), k.keyPath); err != nil {
		return fmt.Errorf("replace the master key file: %w", err)
	}
	k.master, k.next = k.next, nil
	return nil
}

// rewrapRecord seals the record named name by the next key if the old one
// sealed it. A record deleted meanwhile needs nothing.
func (k *Keyring) rewrapRecord(ctx context.Context, name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	blob, err := k.store.GetSecret(ctx, name)
	if engine.IsCode(err, engine.ENotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", recordLabel(name), err)
	}
	if id, ok := recordMasterID(blob); ok && id == k.next.id {
		return nil
	}
	plain, err := k.openRecord(name, blob)
	if err != nil {
		return err
	}
	defer engine.Zero(plain)
	return k.putRecord(ctx, name, plain) // putRecord seals by next
}

func (k *Keyring) hook(step string) error {
	if k.rotationHook == nil {
		return nil
	}
	return k.rotationHook(step)
}

func (k *Keyring) nextKeyPath() string { return k.keyPath + ".next" }
