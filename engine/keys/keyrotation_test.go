package keys_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

// rewrapFixture is a store of nodes with data keys wrapped by version 1
// of the master key.
type rewrapFixture struct {
	t       *testing.T
	secrets engine.Secrets
	store   *bolt.Store
	deks    map[string][]byte // node id -> plaintext data key
	logs    *testenv.LogBuffer
}

func newRewrapFixture(t *testing.T) *rewrapFixture {
	s, st := keyringOnBolt(t)
	return &rewrapFixture{t: t, secrets: s, store: st, deks: map[string][]byte{}, logs: &testenv.LogBuffer{}}
}

// node creates a node in state, with a data key unless withKey is false.
func (f *rewrapFixture) node(id string, state engine.NodeState, updated time.Time, withKey bool) {
	f.t.Helper()
	ctx := f.t.Context()
	n := &engine.Node{ID: id, SubscriptionID: "sub_" + id, OwnerID: "user_1", ChainProfileID: "c", NodeType: "full",
		State: state, CreatedAt: updated, UpdatedAt: updated}
	mustDo(f.t, f.store.CreateNode(ctx, n))
	if !withKey {
		return
	}
	plain, wrapped, err := f.secrets.GenerateDataKey(ctx, engine.KeyMaster)
	mustDo(f.t, err)
	f.deks[id] = plain
	mustDo(f.t, f.store.PutNodeKey(ctx, &engine.NodeKey{NodeID: id, Name: engine.DataKeyName, KeyType: "aes256-gcm",
		Source: "generated", Ciphertext: wrapped, CreatedAt: updated}))
}

func (f *rewrapFixture) rotation(s engine.Secrets, now func() time.Time) *keys.Rotations {
	f.t.Helper()
	r, err := keys.NewRotations(keys.RotationsConfig{
		Secrets: s, Nodes: f.store, Keys: f.store, Now: now, BatchSize: 2, RetryAfter: time.Hour,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	mustDo(f.t, err)
	f.t.Cleanup(r.Close)
	return r
}

// waitRewrap waits until the rewrap's progress satisfies done (nil: it
// completed).
func (f *rewrapFixture) waitRewrap(r *keys.Rotations, done func(*keys.RewrapProgress) bool) *keys.RewrapProgress {
	f.t.Helper()
	deadline := time.Now().Add(testenv.Patience)
	for {
		p, err := r.RewrapProgress(f.t.Context())
		mustDo(f.t, err)
		if done(p) {
			return p
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("rewrap progress %+v after %s; logs:\n%s", p, testenv.Patience, f.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func completed(p *keys.RewrapProgress) bool { return p == nil }

// waitLog waits until the log holds line: the event, not a count that
// comes before it.
func (f *rewrapFixture) waitLog(line string) {
	f.t.Helper()
	deadline := time.Now().Add(testenv.Patience)
	for !strings.Contains(f.logs.String(), line) {
		if time.Now().After(deadline) {
			f.t.Fatalf("no %q in the log after %s:\n%s", line, testenv.Patience, f.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allOnVersion proves every data key is wrapped by version v or later:
// they still open once older versions are refused.
func (f *rewrapFixture) allOnVersion(v int) {
	f.t.Helper()
	ctx := f.t.Context()
	mustDo(f.t, f.secrets.SetMinDecryptionVersion(ctx, engine.KeyMaster, v))
	for id, want := range f.deks {
		k, err := f.store.GetNodeKey(ctx, id, engine.DataKeyName)
		mustDo(f.t, err)
		got, err := f.secrets.Decrypt(ctx, engine.KeyMaster, k.Ciphertext)
		if err != nil || string(got) != string(want) {
			f.t.Fatalf("data key of %s: %v; want it rewrapped to v%d and unchanged", id, err, v)
		}
	}
}

func TestMasterRotationRewrapsEveryDataKey(t *testing.T) {
	f := newRewrapFixture(t)
	before := time.Now().Add(-time.Hour)
	for i := range 5 {
		f.node(fmt.Sprintf("node_run%d", i), engine.NodeRunning, before, true)
	}
	f.node("node_degraded", engine.NodeDegraded, before, true)
	f.node("node_failed", engine.NodeFailed, before, true)
	f.node("node_new", engine.NodeProvisioning, before, false) // no data key yet
	f.node("node_gone", engine.NodeTerminated, before, false)
	r := f.rotation(f.secrets, nil)

	rot, err := r.Rotate(t.Context(), keys.KindMaster, 0)
	mustDo(t, err)
	if rot.KeyID != "v2" || rot.Rewrap == nil || rot.Resumed {
		t.Fatalf("rotation %+v: want v2 with a rewrap started", rot)
	}
	f.waitRewrap(r, completed)
	f.allOnVersion(2)
	if logs := f.logs.String(); !strings.Contains(logs, "master key rewrap complete") || !strings.Contains(logs, "rewrapped=7") {
		t.Fatalf("the log does not report the 7 data keys rewrapped:\n%s", logs)
	}
}

// flakySecrets fails Rewrap after failAfter calls, as a Vault going down.
type flakySecrets struct {
	engine.Secrets
	rewraps   atomic.Int64
	failAfter int64
}

func (s *flakySecrets) Rewrap(ctx context.Context, key string, ct []byte) ([]byte, error) {
	if n := s.rewraps.Add(1); s.failAfter > 0 && n > s.failAfter {
		return nil, engine.Errorf(engine.EUnavailable, "secrets backend down")
	}
	return s.Secrets.Rewrap(ctx, key, ct)
}

func TestMasterRewrapResumesWhereItStopped(t *testing.T) {
	f := newRewrapFixture(t)
	before := time.Now().Add(-time.Hour)
	for i := range 7 {
		f.node(fmt.Sprintf("node_%d", i), engine.NodeRunning, before, true)
	}
	failing := &flakySecrets{Secrets: f.secrets, failAfter: 3}
	first := f.rotation(failing, nil)
	_, err := first.Rotate(t.Context(), keys.KindMaster, 0)
	mustDo(t, err)
	f.waitLog("master key rewrap paused") // the 4th rewrap failed and the pause is logged
	f.waitRewrap(first, func(p *keys.RewrapProgress) bool { return p != nil && p.Rewrapped == 3 })
	first.Close() // the appliance stops while the backend is down

	healthy := &flakySecrets{Secrets: f.secrets}
	second := f.rotation(healthy, nil)
	rot, err := second.Rotate(t.Context(), keys.KindMaster, 0)
	mustDo(t, err)
	if !rot.Resumed || rot.KeyID != "v2" {
		t.Fatalf("rotating while a rewrap is unfinished: %+v; want the rewrap to v2 resumed, no new version", rot)
	}
	f.waitRewrap(second, completed)
	if n := healthy.rewraps.Load(); n != 4 {
		t.Fatalf("the resumed rewrap rewrapped %d data keys, want the 4 left", n)
	}
	info, err := f.secrets.KeyInfo(t.Context(), engine.KeyMaster)
	mustDo(t, err)
	if info.Latest != 2 {
		t.Fatalf("master key at v%d, want v2", info.Latest)
	}
	f.allOnVersion(2)
	if !strings.Contains(f.logs.String(), "master key rewrap paused") {
		t.Fatalf("the outage is not in the log:\n%s", f.logs)
	}
}

// A node that changes state during a pass may be missed by it, so a
// second pass rewraps the nodes changed since the first began.
func TestMasterRewrapRevisitsNodesThatChangedDuringAPass(t *testing.T) {
	f := newRewrapFixture(t)
	start := time.Now().UTC()
	var ticks atomic.Int64 // every reading of the clock is a minute later
	now := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Minute) }
	for i := range 3 {
		f.node(fmt.Sprintf("node_%d", i), engine.NodeRunning, start.Add(-time.Hour), true)
	}
	f.node("node_moving", engine.NodeDegraded, start.Add(90*time.Second), true) // changed after the pass began
	counting := &flakySecrets{Secrets: f.secrets}
	r := f.rotation(counting, now)
	_, err := r.Rotate(t.Context(), keys.KindMaster, 0)
	mustDo(t, err)
	f.waitRewrap(r, completed)
	if n := counting.rewraps.Load(); n != 5 {
		t.Fatalf("%d rewraps, want 4 in the first pass and the moving node again in the second", n)
	}
	if got := strings.Count(f.logs.String(), "master key rewrap pass done"); got != 2 {
		t.Fatalf("%d passes, want 2", got)
	}
	f.allOnVersion(2)
}

func TestRotateRefusals(t *testing.T) {
	f := newRewrapFixture(t)
	r := f.rotation(f.secrets, nil)
	tests := []struct {
		kind  keys.Kind
		grace time.Duration
		want  engine.Code
	}{
		{"passwords", 0, engine.ENotFound},
		{keys.KindMaster, 0, engine.ENotFound}, // no node has a data key, so no master key yet
		{keys.KindMaster, time.Hour, engine.EInvalid},
		{keys.KindJWT, 0, engine.EUnsupported}, // no boot material configured
		{keys.KindAgentCA, 0, engine.EUnsupported},
		{keys.KindPaymentWebhook, 0, engine.EUnsupported},
	}
	for _, tt := range tests {
		if _, err := r.Rotate(t.Context(), tt.kind, tt.grace); !engine.IsCode(err, tt.want) {
			t.Errorf("rotate %s with grace %s: %v, want %s", tt.kind, tt.grace, err, tt.want)
		}
	}
}

func TestRotateEveryKindThroughTheBootMaterial(t *testing.T) {
	f := newRewrapFixture(t)
	boot, err := mustBoot(t, keys.BootConfig{Secrets: f.secrets}).Ensure(t.Context())
	mustDo(t, err)
	r, err := keys.NewRotations(keys.RotationsConfig{Secrets: f.secrets, Boot: boot, Nodes: f.store, Keys: f.store})
	mustDo(t, err)
	defer r.Close()
	for _, kind := range []keys.Kind{keys.KindJWT, keys.KindSealedBox, keys.KindAgentCA, keys.KindPaymentWebhook} {
		rot, err := r.Rotate(t.Context(), kind, 3*time.Hour)
		mustDo(t, err)
		if rot.KeyID == "" || time.Until(rot.GraceUntil) < 2*time.Hour || rot.Rewrap != nil {
			t.Errorf("rotation of %s: %+v; want a new key id and the grace end 3h away", kind, rot)
		}
	}
	if boot.JWT().JWKS().Keys[0].KeyID == keys.JWKThumbprint(&boot.JWTKey.PublicKey) {
		t.Error("the boot material's JWT key set does not follow the rotation")
	}
}
