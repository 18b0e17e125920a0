package enginetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func stNode(ownerID, chain string, state engine.NodeState) *engine.Node {
	return &engine.Node{
		ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: ownerID,
		ChainProfileID: chain, NodeType: "full", State: state,
		Host:         engine.Host{Provider: "local", ProviderID: "pid-1", Address: "10.0.0.7", Region: "eu", InstanceType: "small"},
		AgentVersion: "1.0.0", BinaryVersion: "geth-1.14", CreatedAt: stAt(0), UpdatedAt: stAt(0),
	}
}

func stCommand(nodeID string, status engine.CommandStatus, created time.Time) *engine.Command {
	return &engine.Command{
		ID: engine.NewID("cmd"), NodeID: nodeID, Type: engine.CommandRestart,
		Payload: []byte(`{"reason":"test"}`), Status: status, CreatedAt: created, UpdatedAt: created,
	}
}

// stMustNode creates a node in state and returns it.
func stMustNode(t *testing.T, s engine.Store, owner, chain string, state engine.NodeState) *engine.Node {
	t.Helper()
	n := stNode(owner, chain, state)
	stOK(t, s.CreateNode(t.Context(), n))
	return n
}

func testStoreNodes(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("CreateThenGetByIDAndSubscription", func(t *testing.T) {
		n := stMustNode(t, s, "user_a", "ethereum-holesky", engine.NodeProvisioning)
		if n.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", n.Version)
		}
		got, err := s.GetNode(t.Context(), n.ID)
		stOK(t, err)
		stSame(t, got, n)
		got, err = s.GetNodeBySubscription(t.Context(), n.SubscriptionID)
		stOK(t, err)
		stSame(t, got, n)
	})
	t.Run("UnknownNodeIsNotFound", func(t *testing.T) {
		_, err := s.GetNode(t.Context(), "node_missing")
		stCode(t, err, engine.ENotFound)
		_, err = s.GetNodeBySubscription(t.Context(), "sub_missing")
		stCode(t, err, engine.ENotFound)
		stCode(t, s.TouchNode(t.Context(), "node_missing", stAt(1), ""), engine.ENotFound)
		stCode(t, s.UpdateNode(t.Context(), stNode("user_a", "c", engine.NodeRunning)), engine.ENotFound)
		_, err = s.ChangeNodeState(t.Context(), 1, &engine.NodeStateChange{NodeID: "node_missing", To: engine.NodeRunning, At: stAt(1)})
		stCode(t, err, engine.ENotFound)
	})
	t.Run("CreateRejectsTakenIDOrSubscription", func(t *testing.T) {
		n := stMustNode(t, s, "user_b", "c", engine.NodeProvisioning)
		sameID := stNode("user_b", "c", engine.NodeProvisioning)
		sameID.ID = n.ID
		stCode(t, s.CreateNode(t.Context(), sameID), engine.EConflict)
		sameSub := stNode("user_b", "c", engine.NodeProvisioning)
		sameSub.SubscriptionID = n.SubscriptionID
		stCode(t, s.CreateNode(t.Context(), sameSub), engine.EConflict)
		_, err := s.GetNode(t.Context(), sameSub.ID)
		stCode(t, err, engine.ENotFound)
	})
	t.Run("ListByOwnerPagesInIDOrder", func(t *testing.T) {
		owner := engine.NewID("user")
		var ids []string
		for range 7 {
			ids = append(ids, stMustNode(t, s, owner, "c", engine.NodeRunning).ID)
			stMustNode(t, s, engine.NewID("user"), "c", engine.NodeRunning)
		}
		ids = stSorted(ids)
		stSameIDs(t, stPages(t, 3, func(after string, limit int) ([]*engine.Node, error) {
			return s.ListNodesByOwner(t.Context(), owner, after, limit)
		}), ids)
		got, err := s.ListNodesByOwner(t.Context(), owner, ids[4], 100)
		stOK(t, err)
		stSameIDs(t, stIDs(got), ids[5:])
		got, err = s.ListNodesByOwner(t.Context(), "user_nobody", "", 10)
		stOK(t, err)
		stSameIDs(t, stIDs(got), nil)
	})
	t.Run("ListByStateAndChainFollowChanges", func(t *testing.T) {
		s := openStore(t, reopen)
		chain := engine.NewID("chain")
		a := stMustNode(t, s, "user_c", chain, engine.NodeSyncing)
		b := stMustNode(t, s, "user_c", chain, engine.NodeSyncing)
		c := stMustNode(t, s, "user_d", "other-chain", engine.NodeRunning)
		byState := func(state engine.NodeState) []string {
			return stPages(t, 2, func(after string, limit int) ([]*engine.Node, error) {
				return s.ListNodesByState(t.Context(), state, after, limit)
			})
		}
		byChain := func(chain string) []string {
			return stPages(t, 1, func(after string, limit int) ([]*engine.Node, error) {
				return s.ListNodesByChain(t.Context(), chain, after, limit)
			})
		}
		stSameIDs(t, byState(engine.NodeSyncing), stSorted([]string{a.ID, b.ID}))
		stSameIDs(t, byChain(chain), stSorted([]string{a.ID, b.ID}))

		_, err := s.ChangeNodeState(t.Context(), a.Version, &engine.NodeStateChange{NodeID: a.ID, To: engine.NodeRunning, At: stAt(5)})
		stOK(t, err)
		stSameIDs(t, byState(engine.NodeSyncing), []string{b.ID})
		stSameIDs(t, byState(engine.NodeRunning), stSorted([]string{a.ID, c.ID}))

		b.ChainProfileID = "other-chain"
		stOK(t, s.UpdateNode(t.Context(), b))
		stSameIDs(t, byChain(chain), []string{a.ID})
		stSameIDs(t, byChain("other-chain"), stSorted([]string{b.ID, c.ID}))
	})
	t.Run("UpdateWritesEverythingButState", func(t *testing.T) {
		n := stMustNode(t, s, "user_e", "c", engine.NodeRunning)
		n.Host.Address, n.BinaryVersion, n.UpdatedAt = "10.0.0.8", "geth-1.15", stAt(50)
		n.Runtime = engine.NodeRuntime{
			Ports: map[string]int{"rpc": 26657}, Artifacts: map[string]string{"geth": "9f86d0"},
			Releases: map[string]engine.Release{"geth": {Version: "1.15", URL: "https://example.com/geth-1.15.tar.gz", SHA256: "9f86d0", Binary: "geth", Args: []string{"--syncmode", "snap"}}},
			LastUpgrade: &engine.UpgradeRecord{
				RolloutID: "ro_1", Component: "geth", From: "1.14", To: "1.15", Outcome: "rolled_back", Error: "health check failed", At: stAt(49),
			},
		}
		n.State = engine.NodeTerminated
		stOK(t, s.UpdateNode(t.Context(), n))
		if n.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", n.Version)
		}
		got, err := s.GetNode(t.Context(), n.ID)
		stOK(t, err)
		n.State = engine.NodeRunning
		stSame(t, got, n)
	})
	t.Run("UpdateRejectsStaleVersion", func(t *testing.T) {
		n := stMustNode(t, s, "user_f", "c", engine.NodeRunning)
		stale := *n
		stOK(t, s.UpdateNode(t.Context(), n))
		stCode(t, s.UpdateNode(t.Context(), &stale), engine.EConflict)
		_, err := s.ChangeNodeState(t.Context(), 1, &engine.NodeStateChange{NodeID: n.ID, To: engine.NodeDegraded, At: stAt(1)})
		stCode(t, err, engine.EConflict)
	})
	t.Run("ChangeStateFollowsTheStateMachine", func(t *testing.T) {
		for _, from := range engine.NodeStates {
			for _, to := range append(engine.NodeStates, "bogus") {
				n := stMustNode(t, s, "user_g", "c", from)
				c := &engine.NodeStateChange{NodeID: n.ID, To: to, Reason: "table", At: stAt(9)}
				got, err := s.ChangeNodeState(t.Context(), n.Version, c)
				if !from.CanBecome(to) {
					if engine.ErrorCode(err) != engine.EInvalid {
						t.Fatalf("%s -> %s: error %v, want code %q", from, to, err, engine.EInvalid)
					}
					stNodeState(t, s, n.ID, from, 1)
					continue
				}
				if err != nil {
					t.Fatalf("%s -> %s: %v", from, to, err)
				}
				if got.State != to || got.Version != 2 || c.From != from || c.Seq != 2 {
					t.Fatalf("%s -> %s: node state %s version %d, change from %q seq %d", from, to, got.State, got.Version, c.From, c.Seq)
				}
				stNodeState(t, s, n.ID, to, 2)
			}
		}
	})
	t.Run("TouchDoesNotBumpVersion", func(t *testing.T) {
		n := stMustNode(t, s, "user_h", "c", engine.NodeRunning)
		stOK(t, s.TouchNode(t.Context(), n.ID, stAt(30), "1.1.0"))
		stOK(t, s.TouchNode(t.Context(), n.ID, stAt(40), ""))
		got, err := s.GetNode(t.Context(), n.ID)
		stOK(t, err)
		n.LastSeenAt, n.AgentVersion = stAt(40), "1.1.0"
		stSame(t, got, n)
		_, err = s.ChangeNodeState(t.Context(), n.Version, &engine.NodeStateChange{NodeID: n.ID, To: engine.NodeDegraded, At: stAt(41)})
		stOK(t, err)
	})
	t.Run("RacingStateChangesWithSameVersionExactlyOneWins", func(t *testing.T) {
		n := stMustNode(t, s, "user_i", "c", engine.NodeRunning)
		targets := []engine.NodeState{engine.NodeDegraded, engine.NodeMaintenance, engine.NodeSyncing, engine.NodeFailed}
		errs := stRace(len(targets), func(i int) error {
			_, err := s.ChangeNodeState(t.Context(), n.Version, &engine.NodeStateChange{NodeID: n.ID, To: targets[i], At: stAt(i + 1)})
			return err
		})
		stOneWinner(t, errs, engine.EConflict)
		stNodeState(t, s, n.ID, targets[stWinner(errs)], 2)
	})
}

// stNodeState fails unless the node is in state and its log has logLen entries.
func stNodeState(t *testing.T, s engine.Store, id string, state engine.NodeState, logLen int) {
	t.Helper()
	n, err := s.GetNode(t.Context(), id)
	stOK(t, err)
	log, err := s.ListNodeStateLog(t.Context(), id, time.Time{}, stAt(1e6))
	stOK(t, err)
	if n.State != state || len(log) != logLen || log[len(log)-1].To != state {
		t.Fatalf("node in %s with %d log entries, want %s with %d", n.State, len(log), state, logLen)
	}
}

// stPages lists everything through pages of size limit and fails if a
// page is longer than limit.
func stPages[T any](t *testing.T, limit int, list func(after string, limit int) ([]*T, error)) []string {
	t.Helper()
	var ids []string
	for after := ""; ; {
		page, err := list(after, limit)
		stOK(t, err)
		if len(page) > limit {
			t.Fatalf("page of %d with limit %d", len(page), limit)
		}
		if len(page) == 0 {
			return ids
		}
		ids = append(ids, stIDs(page)...)
		after = ids[len(ids)-1]
	}
}

func testStoreNodeStateLog(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("CreateLogsInitialState", func(t *testing.T) {
		n := stMustNode(t, s, "user_a", "c", engine.NodeProvisioning)
		log, err := s.ListNodeStateLog(t.Context(), n.ID, time.Time{}, stAt(1e6))
		stOK(t, err)
		if len(log) != 1 {
			t.Fatalf("log has %d entries after create, want 1", len(log))
		}
		stSame(t, log[0], &engine.NodeStateChange{NodeID: n.ID, Seq: 1, From: "", To: n.State, Reason: log[0].Reason, At: n.CreatedAt})
	})
	t.Run("SeqIncreasesPerNodeAndWindowIsHalfOpen", func(t *testing.T) {
		n := stMustNode(t, s, "user_b", "c", engine.NodeProvisioning)
		other := stMustNode(t, s, "user_b", "c", engine.NodeProvisioning)
		path := []engine.NodeState{engine.NodeSyncing, engine.NodeRunning, engine.NodeDegraded, engine.NodeRunning, engine.NodeMaintenance}
		version := n.Version
		for i, to := range path {
			c := &engine.NodeStateChange{NodeID: n.ID, To: to, Reason: fmt.Sprintf("step %d", i), At: stAt(10 * (i + 1))}
			got, err := s.ChangeNodeState(t.Context(), version, c)
			stOK(t, err)
			if c.Seq != int64(i+2) {
				t.Fatalf("change %d got Seq %d, want %d", i, c.Seq, i+2)
			}
			version = got.Version
			_, err = s.ChangeNodeState(t.Context(), int64(i+1), &engine.NodeStateChange{NodeID: other.ID, To: []engine.NodeState{engine.NodeSyncing, engine.NodeRunning}[i%2], At: stAt(10*(i+1) + 1)})
			stOK(t, err)
		}
		all, err := s.ListNodeStateLog(t.Context(), n.ID, time.Time{}, stAt(1e6))
		stOK(t, err)
		if len(all) != len(path)+1 {
			t.Fatalf("log has %d entries, want %d", len(all), len(path)+1)
		}
		for i, c := range all {
			if c.Seq != int64(i+1) || c.NodeID != n.ID || (i > 0 && (c.From != all[i-1].To || c.Reason != fmt.Sprintf("step %d", i-1))) {
				t.Fatalf("entry %d = %+v, want Seq %d chained from the previous", i, c, i+1)
			}
		}
		window, err := s.ListNodeStateLog(t.Context(), n.ID, stAt(20), stAt(40))
		stOK(t, err)
		stSame(t, window, all[2:4]) // At 20 and 30; 40 is excluded
		none, err := s.ListNodeStateLog(t.Context(), n.ID, stAt(41), stAt(49))
		stOK(t, err)
		stSame(t, none, []*engine.NodeStateChange{})
	})
}

func testStoreAgents(t *testing.T, s engine.Store, _ StoreOpener) {
	token := func() *engine.EnrollmentToken {
		return &engine.EnrollmentToken{Hash: []byte(engine.NewID("tok")), NodeID: engine.NewID("node"), ExpiresAt: stAt(600), Incarnation: "m7", CreatedAt: stAt(0)}
	}
	keyA, keyB := []byte("fingerprint-of-key-a"), []byte("fingerprint-of-key-b")
	t.Run("ConsumeOnceThenConflictForAnotherKey", func(t *testing.T) {
		tok := token()
		stOK(t, s.CreateEnrollmentToken(t.Context(), tok))
		got, err := s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, stAt(10))
		stOK(t, err)
		tok.UsedAt, tok.KeyFingerprint = stAt(10), keyA
		stSame(t, got, tok)
		_, err = s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyB, stAt(11))
		stCode(t, err, engine.EConflict)
		_, err = s.ConsumeEnrollmentToken(t.Context(), tok.Hash, nil, stAt(11))
		stCode(t, err, engine.EConflict)
	})
	t.Run("SameKeyRepeatsUntilExpiry", func(t *testing.T) {
		tok := token()
		stOK(t, s.CreateEnrollmentToken(t.Context(), tok))
		_, err := s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, stAt(10))
		stOK(t, err)
		again, err := s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, stAt(20))
		stOK(t, err)
		tok.UsedAt, tok.KeyFingerprint = stAt(10), keyA // the first use stands
		stSame(t, again, tok)
		_, err = s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, tok.ExpiresAt)
		stCode(t, err, engine.EForbidden)
	})
	t.Run("UnknownExpiredAndDuplicateTokens", func(t *testing.T) {
		_, err := s.ConsumeEnrollmentToken(t.Context(), []byte("unknown"), keyA, stAt(1))
		stCode(t, err, engine.ENotFound)
		tok := token()
		stOK(t, s.CreateEnrollmentToken(t.Context(), tok))
		stCode(t, s.CreateEnrollmentToken(t.Context(), &engine.EnrollmentToken{Hash: tok.Hash, NodeID: "node_other", ExpiresAt: stAt(600)}), engine.EConflict)
		_, err = s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, tok.ExpiresAt)
		stCode(t, err, engine.EForbidden)
	})
	t.Run("RacingConsumersWithDifferentKeysExactlyOneWins", func(t *testing.T) {
		tok := token()
		stOK(t, s.CreateEnrollmentToken(t.Context(), tok))
		errs := stRace(8, func(i int) error {
			_, err := s.ConsumeEnrollmentToken(t.Context(), tok.Hash, fmt.Appendf(nil, "key-%d", i), stAt(5))
			return err
		})
		stOneWinner(t, errs, engine.EConflict)
	})
	t.Run("RacingRepeatsOfOneKeyAllSucceed", func(t *testing.T) {
		tok := token()
		stOK(t, s.CreateEnrollmentToken(t.Context(), tok))
		for i, err := range stRace(8, func(int) error {
			_, err := s.ConsumeEnrollmentToken(t.Context(), tok.Hash, keyA, stAt(5))
			return err
		}) {
			if err != nil {
				t.Errorf("consumer %d: %v", i, err)
			}
		}
	})
	t.Run("RegistrationPutReplaceRevoke", func(t *testing.T) {
		r := &engine.AgentRegistration{NodeID: engine.NewID("node"), CertSerial: "01", AgentVersion: "1.0.0", EnrolledAt: stAt(0)}
		stOK(t, s.PutAgentRegistration(t.Context(), r))
		r2 := &engine.AgentRegistration{NodeID: r.NodeID, CertSerial: "02", PreviousCertSerial: "01", AgentVersion: "1.1.0", Incarnation: "m7", EnrolledAt: stAt(100)}
		stOK(t, s.PutAgentRegistration(t.Context(), r2))
		got, err := s.GetAgentRegistration(t.Context(), r.NodeID)
		stOK(t, err)
		stSame(t, got, r2)
		stOK(t, s.RevokeAgentRegistration(t.Context(), r.NodeID, stAt(200)))
		got, err = s.GetAgentRegistration(t.Context(), r.NodeID)
		stOK(t, err)
		r2.RevokedAt = stAt(200)
		stSame(t, got, r2)
	})
	t.Run("UnknownRegistrationIsNotFound", func(t *testing.T) {
		_, err := s.GetAgentRegistration(t.Context(), "node_missing")
		stCode(t, err, engine.ENotFound)
		stCode(t, s.RevokeAgentRegistration(t.Context(), "node_missing", stAt(1)), engine.ENotFound)
	})
}

func testStoreCommands(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("CreateThenGetAndUpdate", func(t *testing.T) {
		c := stCommand("node_a", engine.CommandQueued, stAt(0))
		stOK(t, s.CreateCommand(t.Context(), c))
		if c.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", c.Version)
		}
		stale := *c
		c.Status, c.Result, c.AckedAt, c.FinishedAt = engine.CommandCompleted, []byte("sealed"), stAt(1), stAt(2)
		stOK(t, s.UpdateCommand(t.Context(), c))
		if c.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", c.Version)
		}
		got, err := s.GetCommand(t.Context(), c.ID)
		stOK(t, err)
		stSame(t, got, c)
		stCode(t, s.UpdateCommand(t.Context(), &stale), engine.EConflict)
	})
	t.Run("UnknownOrTakenIDs", func(t *testing.T) {
		_, err := s.GetCommand(t.Context(), "cmd_missing")
		stCode(t, err, engine.ENotFound)
		stCode(t, s.UpdateCommand(t.Context(), stCommand("node_a", engine.CommandQueued, stAt(0))), engine.ENotFound)
		c := stCommand("node_a", engine.CommandQueued, stAt(0))
		stOK(t, s.CreateCommand(t.Context(), c))
		stCode(t, s.CreateCommand(t.Context(), c), engine.EConflict)
	})
	t.Run("ListByNodeOldestFirstFilteredByStatus", func(t *testing.T) {
		node := engine.NewID("node")
		byStatus := map[engine.CommandStatus]string{}
		var all []string
		for i, st := range []engine.CommandStatus{engine.CommandFailed, engine.CommandQueued, engine.CommandDelivered, engine.CommandCompleted} {
			c := stCommand(node, st, stAt(100-10*i)) // the last created is the oldest
			stOK(t, s.CreateCommand(t.Context(), c))
			byStatus[st] = c.ID
			all = append([]string{c.ID}, all...)
		}
		stOK(t, s.CreateCommand(t.Context(), stCommand("node_other", engine.CommandQueued, stAt(0))))
		got, err := s.ListCommandsByNode(t.Context(), node)
		stOK(t, err)
		stSameIDs(t, stIDs(got), all)
		got, err = s.ListCommandsByNode(t.Context(), node, engine.CommandQueued, engine.CommandFailed)
		stOK(t, err)
		stSameIDs(t, stIDs(got), []string{byStatus[engine.CommandQueued], byStatus[engine.CommandFailed]})
		got, err = s.ListCommandsByNode(t.Context(), node, engine.CommandCancelled)
		stOK(t, err)
		stSameIDs(t, stIDs(got), nil)
	})
	t.Run("ListByStatusAcrossNodesOldestFirstFollowsUpdates", func(t *testing.T) {
		s := openStore(t, reopen)
		var queued []*engine.Command
		for i := range 4 {
			c := stCommand(fmt.Sprintf("node_%d", i%2), engine.CommandQueued, stAt(40-10*i))
			stOK(t, s.CreateCommand(t.Context(), c))
			queued = append([]*engine.Command{c}, queued...)
		}
		stOK(t, s.CreateCommand(t.Context(), stCommand("node_0", engine.CommandDelivered, stAt(0))))
		got, err := s.ListCommandsByStatus(t.Context(), engine.CommandQueued, 3)
		stOK(t, err)
		stSameIDs(t, stIDs(got), stIDs(queued[:3]))
		queued[0].Status = engine.CommandDelivered
		stOK(t, s.UpdateCommand(t.Context(), queued[0]))
		got, err = s.ListCommandsByStatus(t.Context(), engine.CommandQueued, 10)
		stOK(t, err)
		stSameIDs(t, stIDs(got), stIDs(queued[1:]))
		got, err = s.ListCommandsByStatus(t.Context(), engine.CommandDelivered, 10)
		stOK(t, err)
		if len(got) != 2 {
			t.Fatalf("%d delivered commands, want 2", len(got))
		}
	})
}

func testStoreNodeKeys(t *testing.T, s engine.Store, _ StoreOpener) {
	key := func(node, name string) *engine.NodeKey {
		return &engine.NodeKey{NodeID: node, Name: name, KeyType: "ed25519", Source: "generated", Ciphertext: []byte("ct-" + name), CreatedAt: stAt(0)}
	}
	t.Run("PutReplacesListOrdersByNameDeleteClearsNode", func(t *testing.T) {
		node, other := engine.NewID("node"), engine.NewID("node")
		validator, dek := key(node, "validator"), key(node, "dek")
		stOK(t, s.PutNodeKey(t.Context(), validator))
		stOK(t, s.PutNodeKey(t.Context(), key(node, "dek")))
		stOK(t, s.PutNodeKey(t.Context(), dek)) // activities retry
		dek.Ciphertext = []byte("rewrapped")
		stOK(t, s.PutNodeKey(t.Context(), dek))
		stOK(t, s.PutNodeKey(t.Context(), key(other, "dek")))
		got, err := s.GetNodeKey(t.Context(), node, "dek")
		stOK(t, err)
		stSame(t, got, dek)
		keys, err := s.ListNodeKeys(t.Context(), node)
		stOK(t, err)
		stSame(t, keys, []*engine.NodeKey{dek, validator})

		stOK(t, s.DeleteNodeKeys(t.Context(), node))
		stOK(t, s.DeleteNodeKeys(t.Context(), node))
		keys, err = s.ListNodeKeys(t.Context(), node)
		stOK(t, err)
		stSame(t, keys, []*engine.NodeKey{})
		_, err = s.GetNodeKey(t.Context(), node, "dek")
		stCode(t, err, engine.ENotFound)
		_, err = s.GetNodeKey(t.Context(), other, "dek")
		stOK(t, err)
	})
}

func testStoreInputs(t *testing.T, s engine.Store, _ StoreOpener) {
	input := func(sub, name string, typ engine.InputType) *engine.ProvisioningInput {
		in := &engine.ProvisioningInput{SubscriptionID: sub, Name: name, Type: typ, Status: engine.InputPending, CreatedAt: stAt(0), UpdatedAt: stAt(0)}
		if typ == engine.InputSecret {
			in.Ciphertext = []byte("sealed-" + name)
		} else {
			in.Value = "value-" + name
		}
		return in
	}
	t.Run("PutReplacesListOrdersByNameMarkApplied", func(t *testing.T) {
		sub, other := engine.NewID("sub"), engine.NewID("sub")
		moniker, key := input(sub, "moniker", engine.InputText), input(sub, "bls_key", engine.InputSecret)
		stOK(t, s.PutInput(t.Context(), input(sub, "moniker", engine.InputText)))
		moniker.Value = "renamed"
		stOK(t, s.PutInput(t.Context(), moniker))
		stOK(t, s.PutInput(t.Context(), key))
		elsewhere := input(other, "moniker", engine.InputText)
		stOK(t, s.PutInput(t.Context(), elsewhere))
		got, err := s.ListInputs(t.Context(), sub)
		stOK(t, err)
		stSame(t, got, []*engine.ProvisioningInput{key, moniker})

		stOK(t, s.MarkInputsApplied(t.Context(), sub, stAt(50)))
		got, err = s.ListInputs(t.Context(), sub)
		stOK(t, err)
		for _, in := range []*engine.ProvisioningInput{key, moniker} {
			in.Status, in.UpdatedAt = engine.InputApplied, stAt(50)
		}
		stSame(t, got, []*engine.ProvisioningInput{key, moniker})
		got, err = s.ListInputs(t.Context(), other)
		stOK(t, err)
		stSame(t, got, []*engine.ProvisioningInput{elsewhere})
		got, err = s.ListInputs(t.Context(), "sub_none")
		stOK(t, err)
		stSame(t, got, []*engine.ProvisioningInput{})
	})
}
