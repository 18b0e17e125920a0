package keys

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Kind names a key an operator rotates.
type Kind string

const (
	KindJWT       Kind = "jwt"        // session token signing key
	KindSealedBox Kind = "sealed-box" // X25519 key of provisioning inputs
	KindAgentCA   Kind = "ca"         // agent CA
	KindMaster    Kind = "master"     // KeyMaster, which wraps node data keys
)

// Kinds lists the kinds in the order the CLI shows them.
var Kinds = []Kind{KindJWT, KindSealedBox, KindAgentCA, KindMaster}

// Rotation is what a rotation did. Nothing in it is secret.
type Rotation struct {
	Kind Kind
	// KeyID names the new key: a kid, a fingerprint, or the master key's
	// version as "v3".
	KeyID string
	// GraceUntil is when the replaced key stops being honoured; zero for
	// the master key, whose older versions keep decrypting.
	GraceUntil time.Time
	// Rewrap is the master key's rewrap of node data keys, under way in
	// the background; Resumed says it was not started now but found
	// unfinished and resumed, with no new version made.
	Rewrap  *RewrapProgress
	Resumed bool
}

// RewrapProgress is how far the rewrap of node data keys under the latest
// master key version has come.
type RewrapProgress struct {
	Version   int       `json:"version"` // the version data keys are rewrapped to
	Pass      int       `json:"pass"`
	Rewrapped int       `json:"rewrapped"`
	Failed    int       `json:"failed"` // data keys Secrets refused to rewrap
	StartedAt time.Time `json:"started_at"`
}

// RotationsConfig is what rotations need. Secrets is required.
type RotationsConfig struct {
	Secrets engine.Secrets
	// Boot holds the key sets rotated; this instance follows at once,
	// others within their refresh period.
	Boot *BootMaterial
	// Nodes and Keys find and rewrite the node data keys a master
	// rotation rewraps.
	Nodes engine.NodeStore
	Keys  engine.KeyStore
	// Logger receives progress; nothing secret is logged.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// RetryAfter is how long the rewrap waits after Secrets or the Store
	// failed before it resumes; 30 s when zero.
	RetryAfter time.Duration
	// BatchSize is how many nodes the rewrap reads at a time, and how
	// often it records its progress; 100 when zero.
	BatchSize int
}

// Rotations rotates keys on an operator's request. A master rotation
// makes a new version of KeyMaster, then rewraps every node's data key in
// the background while the appliance keeps serving: old versions still
// decrypt meanwhile. The rewrap records its progress in Secrets, so it
// resumes where it stopped after Close, a crash, or a backend outage; it
// is idempotent, as rewrapping twice only re-encrypts. Run Resume on one
// instance at a time (the leader): two at once duplicate work, no harm.
// Safe for concurrent use.
type Rotations struct {
	cfg    RotationsConfig
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running bool // a rewrap loop is alive
	wake    bool // it should look for a job once more
}

// NewRotations checks cfg; it does no I/O.
func NewRotations(cfg RotationsConfig) (*Rotations, error) {
	if cfg.Secrets == nil {
		return nil, engine.Errorf(engine.EInvalid, "key rotation needs Secrets")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Rotations{cfg: cfg, ctx: ctx, cancel: cancel}, nil
}

// Rotate replaces the key of kind; the old one stays honoured for grace
// (the kind's default when zero). Returns ENotFound for an unknown kind,
// EInvalid for a grace out of range (any grace for the master key),
// EUnsupported when the kind is not configured, and for the master key
// ENotFound while it has no version (no node has a data key yet).
func (r *Rotations) Rotate(ctx context.Context, kind Kind, grace time.Duration) (*Rotation, error) {
	var rot *Rotation
	var err error
	switch kind {
	case KindJWT, KindSealedBox, KindAgentCA:
		rot, err = r.rotateSet(ctx, kind, grace)
	case KindMaster:
		if grace != 0 {
			return nil, engine.Errorf(engine.EInvalid, "the master key has no grace period: its older versions keep decrypting")
		}
		rot, err = r.rotateMaster(ctx)
	default:
		return nil, engine.Errorf(engine.ENotFound, "no key called %q: want one of jwt, sealed-box, ca, master", kind)
	}
	if err != nil {
		return nil, err
	}
	if rot.Rewrap != nil {
		r.cfg.Logger.Info("key rotated", "kind", kind, "key_id", rot.KeyID, "rewrap_resumed", rot.Resumed)
	} else {
		r.cfg.Logger.Info("key rotated", "kind", kind, "key_id", rot.KeyID, "grace_until", rot.GraceUntil)
	}
	return rot, nil
}

func (r *Rotations) rotateSet(ctx context.Context, kind Kind, grace time.Duration) (*Rotation, error) {
	type rotator interface {
		Rotate(context.Context, time.Duration) (string, error)
	}
	var set rotator
	var def time.Duration
	boot := r.cfg.Boot
	switch {
	case boot == nil:
	case kind == KindJWT && boot.JWTKeys != nil:
		set, def = boot.JWTKeys, DefaultJWTGrace
	case kind == KindSealedBox && boot.SealedBoxKeys != nil:
		set, def = boot.SealedBoxKeys, DefaultSealedBoxGrace
	case kind == KindAgentCA && boot.AgentCAs != nil:
		set, def = boot.AgentCAs, DefaultAgentCAGrace
	}
	if set == nil {
		return nil, engine.Errorf(engine.EUnsupported, "the %s key is not kept in Secrets here and cannot be rotated", kind)
	}
	grace, err := checkGrace(grace, def)
	if err != nil {
		return nil, err
	}
	id, err := set.Rotate(ctx, grace)
	if err != nil {
		return nil, err
	}
	return &Rotation{Kind: kind, KeyID: id, GraceUntil: r.now().Add(grace)}, nil
}

// rotateMaster makes a new master key version and starts the rewrap, or
// resumes an unfinished rewrap instead. The version comes first: a crash
// before the rewrap is recorded leaves data keys on older versions, which
// still decrypt, and the next rotation rewraps them.
func (r *Rotations) rotateMaster(ctx context.Context) (*Rotation, error) {
	if r.cfg.Nodes == nil || r.cfg.Keys == nil {
		return nil, engine.Errorf(engine.EUnsupported, "the master key cannot be rotated without the node store")
	}
	job, err := r.loadJob(ctx)
	if err != nil {
		return nil, err
	}
	if job != nil {
		r.Resume()
		return &Rotation{Kind: KindMaster, KeyID: versionName(job.Version), Rewrap: job.progress(), Resumed: true}, nil
	}
	version, err := r.cfg.Secrets.RotateKey(ctx, engine.KeyMaster)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.ENotFound, "the master key has no version yet: no node has a data key to protect")
	}
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", engine.KeyMaster, err)
	}
	now := r.now()
	job = &rewrapJob{Version: version, Pass: 1, PassStarted: now, StartedAt: now}
	if err := r.saveJob(ctx, job); err != nil {
		return nil, err
	}
	r.Resume()
	return &Rotation{Kind: KindMaster, KeyID: versionName(version), Rewrap: job.progress()}, nil
}

func versionName(v int) string { return "v" + strconv.Itoa(v) }

func (r *Rotations) now() time.Time { return r.cfg.Now().UTC() }

// RewrapProgress returns the unfinished rewrap's progress; nil when none.
func (r *Rotations) RewrapProgress(ctx context.Context) (*RewrapProgress, error) {
	job, err := r.loadJob(ctx)
	if job == nil || err != nil {
		return nil, err
	}
	return job.progress(), nil
}

// Resume starts the rewrap in the background if one is unfinished; it
// returns at once. Call it once the appliance has started.
func (r *Rotations) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	r.wake = true
	if r.running {
		return
	}
	r.running = true
	r.wg.Add(1)
	go r.rewrapLoop()
}

// Close stops the rewrap where it is and waits for it; its progress is
// saved, so the next Resume goes on from there.
func (r *Rotations) Close() {
	r.cancel()
	r.wg.Wait()
}

// rewrapLoop runs rewraps until nobody asked for one since it last looked.
func (r *Rotations) rewrapLoop() {
	defer r.wg.Done()
	for r.takeWake() {
		r.rewrapUntilDone(r.ctx)
	}
}

func (r *Rotations) takeWake() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.wake || r.ctx.Err() != nil {
		r.running = false
		return false
	}
	r.wake = false
	return true
}

// rewrapUntilDone runs the recorded rewrap, retrying after failures,
// until it is done or ctx ends.
func (r *Rotations) rewrapUntilDone(ctx context.Context) {
	for {
		err := r.rewrap(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warn("master key rewrap paused; it resumes where it stopped",
			"err", err, "retry_in", r.cfg.RetryAfter)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.RetryAfter):
		}
	}
}
