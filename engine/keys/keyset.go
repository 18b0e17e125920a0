package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// How long the key a rotation replaces stays honoured, unless the rotation
// says otherwise.
const (
	// DefaultJWTGrace: sessions signed by the old key keep working this long.
	DefaultJWTGrace = 24 * time.Hour
	// DefaultSealedBoxGrace is longer: inputs are stored sealed and opened
	// only when the node is provisioned, which can be days after submission.
	DefaultSealedBoxGrace = 30 * 24 * time.Hour
	// DefaultAgentCAGrace is the life of an agent client certificate, so
	// every certificate the old CA issued expires before it stops being
	// trusted.
	DefaultAgentCAGrace = 30 * 24 * time.Hour
	// MaxGrace bounds a grace period: an old key is meant to go away.
	MaxGrace = 365 * 24 * time.Hour
)

// Defaults of BootConfig.
const (
	DefaultRefresh = time.Minute
	// keySetMissReload is the least time between two reloads forced by a
	// key the set does not know, so junk cannot hammer Secrets.
	keySetMissReload = 5 * time.Second
	// keySetReloadTimeout bounds a reload made on a caller's behalf.
	keySetReloadTimeout = 10 * time.Second
)

// retiredSuffix names the secret listing the keys a rotation replaced,
// beside the secret of the current key.
const retiredSuffix = "-retired"

// setOptions tune how a key set follows rotations, as BootConfig says;
// zero fields take the defaults.
type setOptions struct {
	// Now is the clock grace periods are measured on; time.Now when nil.
	Now func() time.Time
	// Refresh is how long a loaded set is used before it is read again
	// from Secrets, so an instance notices a rotation made by another;
	// DefaultRefresh when zero.
	Refresh time.Duration
}

func (o setOptions) withDefaults() setOptions {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	return o
}

// keyCodec reads one kind of key as Secrets stores it.
type keyCodec[K any] struct {
	name   string                  // the secret of the current key
	decode func([]byte) (K, error) // never shows the key in its error
	id     func(K) string          // a public fingerprint
}

// keyVersion is one key of a history: the current one has no end.
type keyVersion[K any] struct {
	key   K
	id    string
	until time.Time // end of the grace period; zero for the current key
}

// keyHistory is a snapshot: the current key and the keys it replaced,
// newest first.
type keyHistory[K any] struct {
	current  keyVersion[K]
	previous []keyVersion[K]
	loadedAt time.Time
}

// inGrace returns the previous keys still honoured at now, newest first.
func (h *keyHistory[K]) inGrace(now time.Time) []keyVersion[K] {
	var out []keyVersion[K]
	for _, v := range h.previous {
		if now.Before(v.until) {
			out = append(out, v)
		}
	}
	return out
}

// find returns the key with id, current or in grace.
func (h *keyHistory[K]) find(id string, now time.Time) (keyVersion[K], bool) {
	if h.current.id == id {
		return h.current, true
	}
	for _, v := range h.inGrace(now) {
		if v.id == id {
			return v, true
		}
	}
	return keyVersion[K]{}, false
}

// retiredKey is a replaced key as Secrets keeps it, encoded as it was
// when current.
type retiredKey struct {
	Key       []byte    `json:"key"`
	RetiredAt time.Time `json:"retired_at"`
	Until     time.Time `json:"until"`
}

type retiredKeys struct {
	Keys []retiredKey `json:"keys"`
}

// versionedKeys is a key kind's history in Secrets: the current key under
// the codec's name, where Boot.Ensure put it, and the keys it
// replaced under that name with retiredSuffix, each until its grace period
// ends. Readers use an in-memory snapshot, refreshed when it is older than
// Refresh and, at most every keySetMissReload, when asked for a key it
// lacks. Without Secrets (a static set) it never changes. Safe for
// concurrent use.
type versionedKeys[K any] struct {
	secrets engine.Secrets
	codec   keyCodec[K]
	opts    setOptions

	history   atomic.Pointer[keyHistory[K]]
	reloading sync.Mutex
	rotating  sync.Mutex
	lastMiss  atomic.Int64 // UnixNano of the last reload forced by a miss
}

func loadVersionedKeys[K any](ctx context.Context, s engine.Secrets, codec keyCodec[K], opts setOptions) (*versionedKeys[K], error) {
	v := &versionedKeys[K]{secrets: s, codec: codec, opts: opts.withDefaults()}
	if err := v.load(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// staticKeys is a history of one key that never reloads nor rotates.
func staticKeys[K any](key K, codec keyCodec[K]) *versionedKeys[K] {
	v := &versionedKeys[K]{codec: codec, opts: setOptions{}.withDefaults()}
	v.history.Store(&keyHistory[K]{current: keyVersion[K]{key: key, id: codec.id(key)}})
	return v
}

func (v *versionedKeys[K]) now() time.Time { return v.opts.Now().UTC() }

// snapshot returns the history, first reloading it when stale. A failed
// reload keeps the stale one until the next refresh: the keys it holds are
// still good, only a rotation elsewhere goes unnoticed a while longer.
func (v *versionedKeys[K]) snapshot() *keyHistory[K] {
	h := v.history.Load()
	if v.secrets == nil || v.now().Sub(h.loadedAt) < v.opts.Refresh || !v.reloading.TryLock() {
		return h
	}
	defer v.reloading.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), keySetReloadTimeout)
	defer cancel()
	if v.load(ctx) != nil {
		v.history.Store(&keyHistory[K]{current: h.current, previous: h.previous, loadedAt: v.now()})
	}
	return v.history.Load()
}

// reloadAfterMiss reloads the history because a caller met a key it does
// not know, unless a miss did so within keySetMissReload. Reports whether
// the history was reloaded.
func (v *versionedKeys[K]) reloadAfterMiss() bool {
	if v.secrets == nil {
		return false
	}
	now, last := v.now().UnixNano(), v.lastMiss.Load()
	if now-last < int64(keySetMissReload) || !v.lastMiss.CompareAndSwap(last, now) {
		return false
	}
	v.reloading.Lock()
	defer v.reloading.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), keySetReloadTimeout)
	defer cancel()
	return v.load(ctx) == nil
}

// load reads the current key and the retired ones from Secrets. A retired
// key equal to the current one (a rotation interrupted before it wrote the
// new key) is left out.
func (v *versionedKeys[K]) load(ctx context.Context) error {
	raw, err := v.secrets.Get(ctx, v.codec.name)
	if err != nil {
		return fmt.Errorf("read %s: %w", v.codec.name, err)
	}
	cur, err := v.codec.decode(raw)
	engine.Zero(raw)
	if err != nil {
		return err
	}
	h := &keyHistory[K]{current: keyVersion[K]{key: cur, id: v.codec.id(cur)}, loadedAt: v.now()}
	retired, err := v.readRetired(ctx)
	if err != nil {
		return err
	}
	for i := len(retired.Keys) - 1; i >= 0; i-- { // stored oldest first
		r := retired.Keys[i]
		k, err := v.codec.decode(r.Key)
		engine.Zero(r.Key)
		if err != nil {
			return err
		}
		if id := v.codec.id(k); id != h.current.id {
			h.previous = append(h.previous, keyVersion[K]{key: k, id: id, until: r.Until})
		}
	}
	v.history.Store(h)
	return nil
}

func (v *versionedKeys[K]) retiredName() string { return v.codec.name + retiredSuffix }

// readRetired returns the retired keys, oldest first; none is no error.
func (v *versionedKeys[K]) readRetired(ctx context.Context) (*retiredKeys, error) {
	raw, err := v.secrets.Get(ctx, v.retiredName())
	if engine.IsCode(err, engine.ENotFound) {
		return &retiredKeys{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", v.retiredName(), err)
	}
	defer engine.Zero(raw)
	var r retiredKeys
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, engine.Errorf(engine.EInternal, "%s is unreadable", v.retiredName())
	}
	return &r, nil
}

// rotate makes next(current) the current key and keeps the current one
// until now+grace. Its steps, and what a crash after each leaves:
//
//  1. The current key joins the retired list (expired entries dropped).
//     Crash: it is both current and retired; load ignores the duplicate.
//  2. The new key replaces the current one. Crash: nothing half done.
//
// Two rotations of one kind at once on different instances end with one
// of the new keys: the other, used for the moment between, is lost; so
// rotations are an operator's act, one at a time. Returns the new key's id.
func (v *versionedKeys[K]) rotate(ctx context.Context, grace time.Duration, next func(current K) ([]byte, error)) (string, error) {
	if v.secrets == nil {
		return "", engine.Errorf(engine.EUnsupported, "these keys are not kept in Secrets and cannot be rotated")
	}
	v.rotating.Lock()
	defer v.rotating.Unlock()
	raw, err := v.secrets.Get(ctx, v.codec.name)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", v.codec.name, err)
	}
	defer engine.Zero(raw)
	cur, err := v.codec.decode(raw)
	if err != nil {
		return "", err
	}
	if err := v.retire(ctx, raw, v.codec.id(cur), grace); err != nil {
		return "", err
	}
	fresh, err := next(cur)
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", v.codec.name, err)
	}
	defer engine.Zero(fresh)
	if err := v.secrets.Put(ctx, v.codec.name, fresh); err != nil {
		return "", fmt.Errorf("store %s: %w", v.codec.name, err)
	}
	v.reloading.Lock() // so a failed refresh cannot put the old history back
	defer v.reloading.Unlock()
	if err := v.load(ctx); err != nil {
		return "", err
	}
	return v.history.Load().current.id, nil
}

// retire adds the encoded current key, whose id is id, to the retired
// list until now+grace, dropping expired entries and an earlier entry of
// the same key.
func (v *versionedKeys[K]) retire(ctx context.Context, encoded []byte, id string, grace time.Duration) error {
	old, err := v.readRetired(ctx)
	if err != nil {
		return err
	}
	now := v.now()
	var kept retiredKeys
	for _, r := range old.Keys {
		k, err := v.codec.decode(r.Key)
		if err != nil {
			return err
		}
		if now.Before(r.Until) && v.codec.id(k) != id {
			kept.Keys = append(kept.Keys, r)
		}
	}
	kept.Keys = append(kept.Keys, retiredKey{Key: encoded, RetiredAt: now, Until: now.Add(grace)})
	doc, err := json.Marshal(kept)
	for _, r := range old.Keys {
		engine.Zero(r.Key)
	}
	if err != nil {
		return engine.Errorf(engine.EInternal, "encode %s", v.retiredName())
	}
	defer engine.Zero(doc)
	if err := v.secrets.Put(ctx, v.retiredName(), doc); err != nil {
		return fmt.Errorf("store %s: %w", v.retiredName(), err)
	}
	return nil
}

// checkGrace returns grace, or def when zero. Returns EInvalid unless it
// is within (0, MaxGrace].
func checkGrace(grace, def time.Duration) (time.Duration, error) {
	if grace == 0 {
		return def, nil
	}
	if grace < 0 || grace > MaxGrace {
		return 0, engine.Errorf(engine.EInvalid, "a grace period is more than 0 and at most %s", MaxGrace)
	}
	return grace, nil
}
