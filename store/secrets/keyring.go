// Package secrets holds the adapters of engine.Secrets. The local keyring
// (this file and its companions) is the embedded default: a master key in a
// file of the data dir (or in the configuration) seals everything the
// keyring keeps, and the sealed records live in the Store's SecretStore, so a
// backup of the Store holds no readable secret and the master key file must
// be backed up separately.
//
// The keyring serves one appliance process. It keeps key state in memory and
// its store has no compare-and-set, so several instances sharing one
// PostgreSQL store could each create the same key or reserve the same
// encryption counts: multi-instance deployments use Vault.
//
// Key material is zeroed where Go allows: raw key bytes as soon as their
// cipher is built, plaintext the keyring decrypted for itself once used. Go
// cannot promise more: AES key schedules live inside crypto/cipher values,
// a key given as a string (Options.MasterKey) is immutable, and the runtime
// may have copied any of them (a growing slice, a stack move) before it was
// zeroed.
package secrets

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Options configure a Keyring. One of DataDir, MasterKeyFile or MasterKey
// must be set.
type Options struct {
	// DataDir holds the master key file, MasterKeyFileName, unless
	// MasterKeyFile or MasterKey says otherwise.
	DataDir string
	// MasterKeyFile is the master key file: 32 raw bytes or their base64.
	// Open creates it (32 random bytes, mode 0600) when it is missing and the
	// store holds nothing sealed, and refuses to start when it is missing but
	// sealed data exists.
	MasterKeyFile string
	// MasterKey is the master key itself, base64 of 32 bytes (from an
	// environment variable, say). It wins over the files and is never
	// written anywhere, so RotateMaster is unsupported with it.
	MasterKey string
	// EncryptionLimit is how many encryptions one version of a named key
	// performs before the keyring rotates that key by itself; 0 means
	// DefaultEncryptionLimit, and more than 2^32 means 2^32.
	EncryptionLimit uint64
}

// DefaultEncryptionLimit keeps each key version far below the 2^32
// encryptions that random 96-bit GCM nonces allow (NIST SP 800-38D), leaving
// room for counts lost in a crash (see reserveEncryptions).
const DefaultEncryptionLimit = 1 << 30

// Store names: every record of the keyring lives under prefix.
const (
	prefix    = "keyring/"
	checkName = prefix + "check" // proves at Open that the master key fits
	kvPrefix  = prefix + "kv/"
	keyPrefix = prefix + "key/"
)

// checkText is the content of the check record.
const checkText = "hoodcloud keyring v1"

// Keyring is engine.Secrets on a master key and the Store's SecretStore.
// Open must succeed before any other method is called. Safe for concurrent use.
type Keyring struct {
	store  engine.SecretStore
	opts   Options
	random io.Reader
	// rotationHook, when set by a test, runs after each record a master
	// rotation rewraps and before the key file is replaced ("rename"); an
	// error stops the rotation there, as a crash would.
	rotationHook func(step string) error

	rotating sync.Mutex // one master rotation at a time

	// mu guards the fields below and serialises the keyring's writes to the
	// store, so a rotation never rewraps a record while it is being replaced.
	mu      sync.Mutex
	state   int // closed, open or new
	keyPath string
	master  *masterKey
	next    *masterKey // the new master key while a rotation is under way
	keys    map[string]*namedKey
}

const (
	stateNew = iota
	stateOpen
	stateClosed
)

var _ engine.Secrets = (*Keyring)(nil)

// New returns a keyring over store; it does no I/O.
func New(store engine.SecretStore, opts Options) *Keyring {
	if opts.EncryptionLimit == 0 {
		opts.EncryptionLimit = DefaultEncryptionLimit
	}
	opts.EncryptionLimit = min(opts.EncryptionLimit, 1<<32)
	k := &Keyring{store: store, opts: opts, random: rand.Reader, keys: map[string]*namedKey{}}
	if opts.MasterKey == "" {
		k.keyPath = opts.MasterKeyFile
		if k.keyPath == "" && opts.DataDir != "" {
			k.keyPath = filepath.Join(opts.DataDir, MasterKeyFileName)
		}
	}
	return k
}

// Open loads the master key (creating the file on first start), checks it
// opens the store's data, and finishes a master rotation a crash
// interrupted. It returns ErrMasterKeyMissing or ErrMasterKeyMismatch, with
// a message for the operator, when the key cannot read the data.
func (k *Keyring) Open(ctx context.Context) error {
	k.rotating.Lock()
	defer k.rotating.Unlock()
	if err := k.open(ctx); err != nil {
		return fmt.Errorf("open keyring: %w", err)
	}
	if k.next == nil {
		return nil
	}
	if err := k.finishMasterRotation(ctx); err != nil {
		return fmt.Errorf("open keyring: finish the interrupted master key rotation: %w", err)
	}
	return nil
}

func (k *Keyring) open(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state != stateNew {
		return errors.New("opened twice")
	}
	if err := k.loadMasterKeys(ctx); err != nil {
		return err
	}
	if err := k.checkMasterKey(ctx); err != nil {
		return err
	}
	k.state = stateOpen
	return nil
}

// loadMasterKeys reads the master key, and the next one if a rotation is
// under way. Caller holds mu.
func (k *Keyring) loadMasterKeys(ctx context.Context) error {
	if k.opts.MasterKey != "" {
		raw, err := decodeMasterKey([]byte(k.opts.MasterKey))
		if err != nil {
			return fmt.Errorf("master key from the configuration: %w", err)
		}
		defer engine.Zero(raw)
		k.master, err = newMasterKey(raw)
		return err
	}
	if k.keyPath == "" {
		return errors.New("no master key: configure a data dir, a master key file or a master key")
	}
	master, err := readMasterKeyFile(k.keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		master, err = k.createMasterKey(ctx)
	}
	if err != nil {
		return err
	}
	k.master = master
	next, err := readMasterKeyFile(k.nextKeyPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	k.next = next
	return nil
}

// createMasterKey writes a new master key file, unless the store holds
// sealed data that a new key could never read.
func (k *Keyring) createMasterKey(ctx context.Context) (*masterKey, error) {
	names, err := k.store.ListSecrets(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("look for sealed data: %w", err)
	}
	if len(names) > 0 {
		return nil, fmt.Errorf("%w: %s does not exist but the store holds %d records sealed by a master key; "+
			"restore that file from a backup (or supply the key in the configuration): a new key could not read them",
			ErrMasterKeyMissing, k.keyPath, len(names))
	}
	return createMasterKeyFile(k.keyPath, k.random)
}

// checkMasterKey opens the check record, writing it on first start, so a
// wrong key is refused at once rather than failing at first use. Caller
// holds mu.
func (k *Keyring) checkMasterKey(ctx context.Context) error {
	blob, err := k.store.GetSecret(ctx, checkName)
	if engine.IsCode(err, engine.ENotFound) {
		return k.writeCheck(ctx)
	}
	if err != nil {
		return fmt.Errorf("read the master key check: %w", err)
	}
	plain, err := k.openRecord(checkName, blob)
	if err != nil {
		return err
	}
	if string(plain) != checkText {
		return fmt.Errorf("%w: the check record holds unexpected content", ErrMasterKeyMismatch)
	}
	return nil
}

// writeCheck writes the check record of a store that has none: a new one,
// or one whose check was lost, provided its first record is ours.
func (k *Keyring) writeCheck(ctx context.Context) error {
	names, err := k.store.ListSecrets(ctx, prefix)
	if err != nil {
		return fmt.Errorf("look for sealed data: %w", err)
	}
	if len(names) > 0 {
		blob, err := k.store.GetSecret(ctx, names[0])
		if err != nil {
			return fmt.Errorf("read a sealed record: %w", err)
		}
		if _, err := k.recordKey(blob); err != nil {
			return err
		}
	}
	return k.putRecord(ctx, checkName, []byte(checkText))
}

// MasterKeyID names the master key in use: a fingerprint safe to show,
// which changes when the key rotates.
func (k *Keyring) MasterKeyID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return ""
	}
	return k.master.ID()
}

// Ping reads the check record: the store answers and the keyring is open.
func (k *Keyring) Ping(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	if _, err := k.store.GetSecret(ctx, checkName); err != nil {
		return fmt.Errorf("ping keyring: %w", err)
	}
	return nil
}

// Close forgets the keys; the store stays open (its owner closes it). Raw
// key bytes are zeroed as soon as their cipher is built; the AES key
// schedules inside the ciphers cannot be, and are left to the collector.
func (k *Keyring) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state = stateClosed
	k.master, k.next = nil, nil
	clear(k.keys)
	return nil
}

// ready checks the keyring can serve. Caller holds mu.
func (k *Keyring) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.state != stateOpen {
		return engine.Errorf(engine.EUnavailable, "the keyring is not open")
	}
	return nil
}

// Get returns the secret stored under name.
func (k *Keyring) Get(ctx context.Context, name string) ([]byte, error) {
	if !engine.ValidSecretName(name) {
		return nil, errInvalidName("secret", name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return nil, err
	}
	return k.getRecord(ctx, kvPrefix+name)
}

// Put creates or replaces the secret stored under name.
func (k *Keyring) Put(ctx context.Context, name string, value []byte) error {
	if !engine.ValidSecretName(name) {
		return errInvalidName("secret", name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	return k.putRecord(ctx, kvPrefix+name, value)
}

// Create stores value under name unless something is there. It is atomic
// within this process, which the keyring is made for.
func (k *Keyring) Create(ctx context.Context, name string, value []byte) error {
	if !engine.ValidSecretName(name) {
		return errInvalidName("secret", name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	_, err := k.store.GetSecret(ctx, kvPrefix+name)
	switch {
	case err == nil:
		return engine.Errorf(engine.EConflict, "secret %q exists", name)
	case !engine.IsCode(err, engine.ENotFound):
		return fmt.Errorf("read secret %q: %w", name, err)
	}
	return k.putRecord(ctx, kvPrefix+name, value)
}

// Delete removes the secret stored under name.
func (k *Keyring) Delete(ctx context.Context, name string) error {
	if !engine.ValidSecretName(name) {
		return errInvalidName("secret", name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return err
	}
	if err := k.store.DeleteSecret(ctx, kvPrefix+name); err != nil {
		return fmt.Errorf("delete secret %q: %w", name, err)
	}
	return nil
}

// getRecord reads and opens the record named name; ENotFound if missing.
// Caller holds mu.
func (k *Keyring) getRecord(ctx context.Context, name string) ([]byte, error) {
	blob, err := k.store.GetSecret(ctx, name)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.ENotFound, "%s not found", recordLabel(name))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", recordLabel(name), err)
	}
	return k.openRecord(name, blob)
}

// putRecord seals plain and stores it as name, under the new master key
// while a rotation is under way. Caller holds mu.
func (k *Keyring) putRecord(ctx context.Context, name string, plain []byte) error {
	sealer := k.master
	if k.next != nil {
		sealer = k.next
	}
	blob, err := sealRecord(sealer, k.random, name, plain)
	if err != nil {
		return err
	}
	if err := k.store.PutSecret(ctx, name, blob); err != nil {
		return fmt.Errorf("write %s: %w", recordLabel(name), err)
	}
	return nil
}

// openRecord opens a record with whichever master key sealed it. Caller
// holds mu.
func (k *Keyring) openRecord(name string, blob []byte) ([]byte, error) {
	m, err := k.recordKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", recordLabel(name), err)
	}
	plain, err := openRecord(m, name, blob)
	if err != nil {
		return nil, engine.Errorf(engine.EInternal, "%s fails its integrity check: the store was damaged or tampered with", recordLabel(name))
	}
	return plain, nil
}

// recordKey picks the master key that sealed blob. Caller holds mu.
func (k *Keyring) recordKey(blob []byte) (*masterKey, error) {
	id, ok := recordMasterID(blob)
	switch {
	case !ok:
		return nil, engine.Errorf(engine.EInternal, "not a keyring record: the store was damaged or tampered with")
	case id == k.master.id:
		return k.master, nil
	case k.next != nil && id == k.next.id:
		return k.next, nil
	}
	return nil, fmt.Errorf("%w: the store's data is sealed by master key %x, the key supplied is %s; "+
		"supply the master key this data was written with", ErrMasterKeyMismatch, id, k.master.ID())
}

// recordLabel names a record in messages without its prefix.
func recordLabel(name string) string {
	if rest, ok := strings.CutPrefix(name, kvPrefix); ok {
		return fmt.Sprintf("secret %q", rest)
	}
	if rest, ok := strings.CutPrefix(name, keyPrefix); ok {
		return fmt.Sprintf("key record %q", rest)
	}
	return fmt.Sprintf("keyring record %q", strings.TrimPrefix(name, prefix))
}

func errInvalidName(kind, name string) error {
	return engine.Errorf(engine.EInvalid, "%q is not a valid %s name", name, kind)
}
