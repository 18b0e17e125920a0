package enginetest

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunStoreRestart proves a store keeps everything across a restart. It
// writes a record of every aggregate through the fresh, empty store open
// returns, closes it, then reads them back through reopen, which must open
// the same data anew (the same file, the same database). Unique keys,
// sequences and the leader epoch must carry on where they were. The suite
// closes both stores.
func RunStoreRestart(t *testing.T, open, reopen StoreOpener) {
	first := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			first.Close()
		}
	})
	w := stWriteEverything(t, first)
	closed = true
	stOK(t, first.Close())

	s := openStore(t, reopen)
	w.check(t, s)
}

// storeSnapshot is one record of each aggregate, as written.
type storeSnapshot struct {
	user    *engine.User
	key     *engine.APIKey
	sub     *engine.Subscription
	payment *engine.Payment
	event   *engine.PaymentEvent
	ref     *engine.ChainProfileRef
	node    *engine.Node
	change  *engine.NodeStateChange
	token   *engine.EnrollmentToken
	reg     *engine.AgentRegistration
	command *engine.Command
	nodeKey *engine.NodeKey
	input   *engine.ProvisioningInput
	inc     *engine.Incident
	bucket  *engine.UptimeBucket
	rollout *engine.Rollout
	roNode  *engine.RolloutNode
	group   *engine.RolloutGroup
	lease   *engine.SigningLease
}

func stWriteEverything(t *testing.T, s engine.Store) *storeSnapshot {
	t.Helper()
	ctx := t.Context()
	w := &storeSnapshot{user: stUser()}
	stOK(t, s.CreateUser(ctx, w.user))
	w.key = stAPIKey(w.user.ID, stAt(1))
	stOK(t, s.CreateAPIKey(ctx, w.key))
	w.sub = stSubscription(w.user.ID, engine.SubscriptionPendingPayment)
	stOK(t, s.CreateSubscription(ctx, w.sub))
	w.payment = stPayment(w.user.ID)
	stOK(t, s.CreatePayment(ctx, w.payment))
	w.event = &engine.PaymentEvent{EventID: engine.NewID("evt"), PaymentID: w.payment.ID, ReceivedAt: stAt(2)}
	stOK(t, s.RecordPaymentEvent(ctx, w.event))
	w.ref = &engine.ChainProfileRef{ID: "ethereum-holesky", Version: "3", Checksum: "sha", Source: "assets", UpdatedAt: stAt(3)}
	stOK(t, s.PutChainProfileRef(ctx, w.ref))

	w.node = stNode(w.user.ID, w.ref.ID, engine.NodeProvisioning)
	stOK(t, s.CreateNode(ctx, w.node))
	w.change = &engine.NodeStateChange{NodeID: w.node.ID, To: engine.NodeSyncing, Reason: "booted", At: stAt(4)}
	var err error
	w.node, err = s.ChangeNodeState(ctx, w.node.Version, w.change)
	stOK(t, err)
	w.token = &engine.EnrollmentToken{Hash: []byte("restart-token"), NodeID: w.node.ID, ExpiresAt: stAt(600), Incarnation: "m1", CreatedAt: stAt(0)}
	stOK(t, s.CreateEnrollmentToken(ctx, w.token))
	w.reg = &engine.AgentRegistration{NodeID: w.node.ID, CertSerial: "0a", AgentVersion: "1.0.0", Incarnation: "m1", EnrolledAt: stAt(5)}
	stOK(t, s.PutAgentRegistration(ctx, w.reg))
	w.command = stCommand(w.node.ID, engine.CommandQueued, stAt(6))
	stOK(t, s.CreateCommand(ctx, w.command))
	w.nodeKey = &engine.NodeKey{NodeID: w.node.ID, Name: "dek", KeyType: "aes256", Source: "generated", Ciphertext: []byte("wrapped"), CreatedAt: stAt(7)}
	stOK(t, s.PutNodeKey(ctx, w.nodeKey))
	w.input = &engine.ProvisioningInput{SubscriptionID: w.sub.ID, Name: "moniker", Type: engine.InputText, Value: "mine", Status: engine.InputPending, CreatedAt: stAt(8), UpdatedAt: stAt(8)}
	stOK(t, s.PutInput(ctx, w.input))
	w.inc = stIncident(w.node.ID, "lagging", stAt(9))
	stOK(t, s.OpenIncident(ctx, w.inc))
	w.bucket = &engine.UptimeBucket{NodeID: w.node.ID, Hour: stT0.Truncate(time.Hour), UpSeconds: 3000, DownSeconds: 600, Complete: true}
	stOK(t, s.PutUptimeBuckets(ctx, []*engine.UptimeBucket{w.bucket}))
	w.rollout = stRollout()
	stOK(t, s.CreateRollout(ctx, w.rollout))
	w.roNode = stRolloutNode(w.rollout.ID, w.node.ID, 1)
	stOK(t, s.PutRolloutNodes(ctx, []*engine.RolloutNode{w.roNode}))
	w.group = stRolloutGroup()
	stOK(t, s.CreateRolloutGroup(ctx, w.group))
	_, err = s.AdvanceLeaderEpoch(ctx, "first-process")
	stOK(t, err)
	stOK(t, s.PutSecret(ctx, "keyring/master", []byte("sealed")))
	w.lease, err = s.GrantSigningLease(ctx, stGrant(w.node.ID, "m1", stAt(12)))
	stOK(t, err)
	return w
}

// check reads every record back through s, then writes through the
// indexes and sequences to show they survived too.
func (w *storeSnapshot) check(t *testing.T, s engine.Store) {
	t.Helper()
	ctx := t.Context()
	stGot(t, w.user, func() (any, error) { return s.GetUserByEmail(ctx, w.user.Email) })
	stGot(t, w.key, func() (any, error) { return s.GetAPIKeyByHash(ctx, w.key.Hash) })
	stGot(t, w.sub, func() (any, error) {
		return s.FindPendingSubscription(ctx, engine.SubscriptionKey{UserID: w.sub.UserID, ChainProfileID: w.sub.ChainProfileID, NodeType: w.sub.NodeType, Duration: w.sub.Duration})
	})
	stGot(t, w.payment, func() (any, error) { return s.GetPayment(ctx, w.payment.ID) })
	stGot(t, w.event, func() (any, error) { return s.GetPaymentEvent(ctx, w.event.EventID) })
	stGot(t, w.ref, func() (any, error) { return s.GetChainProfileRef(ctx, w.ref.ID) })
	stGot(t, []*engine.Node{w.node}, func() (any, error) { return s.ListNodesByOwner(ctx, w.user.ID, "", 10) })
	stGot(t, w.reg, func() (any, error) { return s.GetAgentRegistration(ctx, w.node.ID) })
	stGot(t, []*engine.Command{w.command}, func() (any, error) { return s.ListCommandsByStatus(ctx, engine.CommandQueued, 10) })
	stGot(t, w.nodeKey, func() (any, error) { return s.GetNodeKey(ctx, w.node.ID, "dek") })
	stGot(t, []*engine.ProvisioningInput{w.input}, func() (any, error) { return s.ListInputs(ctx, w.sub.ID) })
	stGot(t, w.inc, func() (any, error) { return s.FindOpenIncident(ctx, w.node.ID, "lagging") })
	stGot(t, []*engine.UptimeBucket{w.bucket}, func() (any, error) { return s.ListUptimeBuckets(ctx, w.node.ID, stT0.Add(-time.Hour), stT0) })
	stGot(t, w.rollout, func() (any, error) { return s.GetRollout(ctx, w.rollout.ID) })
	stGot(t, []*engine.RolloutNode{w.roNode}, func() (any, error) { return s.ListRolloutNodes(ctx, w.rollout.ID, 1) })
	stGot(t, w.group, func() (any, error) { return s.GetRolloutGroup(ctx, w.group.ID) })
	stGot(t, []*engine.Rollout{w.rollout}, func() (any, error) { return s.ListRollouts(ctx, "", 0) })
	stGot(t, []*engine.RolloutGroup{w.group}, func() (any, error) { return s.ListRolloutGroups(ctx, "", 0) })
	stGot(t, []byte("sealed"), func() (any, error) { return s.GetSecret(ctx, "keyring/master") })
	stGot(t, w.lease, func() (any, error) { return s.GetSigningLease(ctx, w.node.ID, w.lease.KeyName) })

	tok, err := s.ConsumeEnrollmentToken(ctx, w.token.Hash, []byte("restart-key"), stAt(20))
	stOK(t, err)
	if tok.Incarnation != "m1" {
		t.Fatalf("token incarnation after restart = %q, want m1", tok.Incarnation)
	}
	_, err = s.GrantSigningLease(ctx, stGrant(w.node.ID, "m2", stAt(21)))
	stCode(t, err, engine.EConflict)
	next := &engine.NodeStateChange{NodeID: w.node.ID, To: engine.NodeRunning, At: stAt(30)}
	_, err = s.ChangeNodeState(ctx, w.node.Version, next)
	stOK(t, err)
	if next.Seq != 3 || next.From != engine.NodeSyncing {
		t.Fatalf("state change after restart: Seq %d from %q, want 3 from syncing", next.Seq, next.From)
	}
	if epoch, err := s.AdvanceLeaderEpoch(ctx, "second-process"); err != nil || epoch != 2 {
		t.Fatalf("epoch after restart = %d, %v; want 2", epoch, err)
	}
	dup := stUser()
	dup.Email = w.user.Email
	stCode(t, s.CreateUser(ctx, dup), engine.EConflict)
	stCode(t, s.CreateNode(ctx, w.node), engine.EConflict)
	if n, err := s.CountUsers(ctx); err != nil || n != 1 {
		t.Fatalf("CountUsers after restart = %d, %v; want 1", n, err)
	}
}

// stGot reads a record with get and compares it to want.
func stGot(t *testing.T, want any, get func() (any, error)) {
	t.Helper()
	got, err := get()
	stOK(t, err)
	stSame(t, got, want)
}
