package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// leaseEnv is a gateway service over a bbolt Store and an embedded cache,
// its heartbeats made as if over a connection with an agent's certificate.
type leaseEnv struct {
	*testEnv
	cache   *redis.Embedded
	service *service
}

func newLeaseEnv(t *testing.T) *leaseEnv {
	t.Helper()
	e := &leaseEnv{testEnv: newTestEnv(t), cache: redis.NewEmbedded(redis.Options{})}
	if err := e.cache.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cache.Close() })
	e.service = newService(Config{Identity: e.identity, Commands: e.store, Cache: e.cache, Leases: e.store}.withDefaults())
	t.Cleanup(e.service.wait) // before the cache closes
	return e
}

// agent enrols the agent of nodeID's host incarnation and returns the
// context of its calls: a peer holding its certificate.
func (e *leaseEnv) agent(t *testing.T, nodeID, incarnation string) context.Context {
	t.Helper()
	tok, err := e.identity.IssueEnrollmentToken(context.Background(), nodeID, incarnation, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := e.identity.Enroll(context.Background(), tok, nodeID, newCSR(t, "agent"), "v1")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(enrolled.CertificateDER)
	if err != nil {
		t.Fatal(err)
	}
	state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	return peer.NewContext(t.Context(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// grant leases nodeID's validator key to its host incarnation at now.
func (e *leaseEnv) grant(t *testing.T, nodeID, incarnation string, now time.Time) *engine.SigningLease {
	t.Helper()
	l, err := e.store.GrantSigningLease(context.Background(), engine.LeaseGrant{NodeID: nodeID, KeyName: "priv_validator_key",
		Holder: engine.LeaseHolder{NodeID: nodeID, Incarnation: incarnation}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (e *leaseEnv) release(t *testing.T, l *engine.SigningLease, now time.Time) {
	t.Helper()
	if _, err := e.store.ReleaseSigningLease(context.Background(), l.NodeID, l.KeyName, l.Holder, l.Epoch, "stopped", now); err != nil {
		t.Fatal(err)
	}
}

// start queues a START carrying a lease of the validator key at each epoch.
func (e *leaseEnv) start(t *testing.T, nodeID string, epochs ...uint64) *engine.Command {
	t.Helper()
	var p agentv1.StartPayload
	for _, epoch := range epochs {
		p.Leases = append(p.Leases, &agentv1.SigningLease{KeyName: "priv_validator_key", Epoch: epoch})
	}
	payload, err := agentv1.MarshalPayload(&p)
	if err != nil {
		t.Fatal(err)
	}
	c := &engine.Command{NodeID: nodeID, Type: engine.CommandStart, Payload: payload}
	if err := engine.EnqueueCommand(context.Background(), e.store, e.cache, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestALeaseBearingStartReachesOnlyTheLeaseHolderAtItsEpoch(t *testing.T) {
	e := newLeaseEnv(t)
	t0 := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		agent string                                   // the heartbeating agent's incarnation
		lease func(t *testing.T, nodeID string) uint64 // grants, returns the epoch the START carries
		none  bool                                     // the START carries no lease
		fail  string                                   // the command's error when refused
	}{
		{name: "delivered to the holder", agent: "m1", lease: func(t *testing.T, n string) uint64 { return e.grant(t, n, "m1", t0).Epoch }},
		{name: "refused to another host of the node", agent: "", fail: "signing lease of key priv_validator_key is held by another host",
			lease: func(t *testing.T, n string) uint64 { return e.grant(t, n, "m1", t0).Epoch }},
		{name: "refused with a stale epoch", agent: "m1", fail: "signing lease of key priv_validator_key: stale epoch 1, the lease is at epoch 2",
			lease: func(t *testing.T, n string) uint64 {
				e.release(t, e.grant(t, n, "m1", t0), t0.Add(time.Second))
				e.grant(t, n, "m1", t0.Add(time.Hour))
				return 1
			}},
		{name: "refused once released", agent: "m1", fail: "signing lease of key priv_validator_key was released",
			lease: func(t *testing.T, n string) uint64 {
				l := e.grant(t, n, "m1", t0)
				e.release(t, l, t0.Add(time.Second))
				return l.Epoch
			}},
		{name: "refused for a key never leased", agent: "m1", fail: "signing lease of key priv_validator_key was never granted",
			lease: func(*testing.T, string) uint64 { return 1 }},
		{name: "a START without leases is delivered as before", agent: "", none: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodeID := fmt.Sprint("node_", i)
			ctx := e.agent(t, nodeID, tc.agent)
			var epochs []uint64
			if !tc.none {
				epochs = append(epochs, tc.lease(t, nodeID))
			}
			c := e.start(t, nodeID, epochs...)
			got := e.heartbeat(t, ctx, nodeID)
			if tc.fail == "" {
				e.wantDelivered(t, c, got)
			} else {
				e.wantRefused(t, c, got, tc.fail)
			}
		})
	}
}

func (e *leaseEnv) heartbeat(t *testing.T, ctx context.Context, nodeID string) []string {
	t.Helper()
	resp, err := e.service.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: nodeID})
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	var ids []string
	for _, c := range resp.GetCommands() {
		ids = append(ids, c.GetId())
	}
	return ids
}

func (e *leaseEnv) wantDelivered(t *testing.T, c *engine.Command, got []string) {
	t.Helper()
	stored, err := e.store.GetCommand(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{c.ID}) || stored.Status != engine.CommandDelivered {
		t.Fatalf("heartbeat gave %q, command %s; want it delivered", got, stored.Status)
	}
}

func (e *leaseEnv) wantRefused(t *testing.T, c *engine.Command, got []string, why string) {
	t.Helper()
	stored, err := e.store.GetCommand(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || stored.Status != engine.CommandFailed || stored.Error != why || stored.FinishedAt.IsZero() {
		t.Fatalf("heartbeat gave %q, command %s %q; want it failed with %q", got, stored.Status, stored.Error, why)
	}
	queued, err := e.cache.PendingCommands(context.Background(), c.NodeID, 10)
	if err != nil || len(queued) != 0 {
		t.Fatalf("queue = %q, %v; want the refused START off it", queued, err)
	}
}

// An agent whose registration a new host's enrolment replaced may still
// pass the registration cache of authorize for a moment: the START whose
// lease the new host holds waits on the queue for that host.
func TestASupersededAgentLeavesTheNewHostsStartQueued(t *testing.T) {
	e := newLeaseEnv(t)
	old := e.agent(t, "node_a", "")
	newHost := e.agent(t, "node_a", "m1")
	lease := e.grant(t, "node_a", "m1", time.Now())
	c := e.start(t, "node_a", lease.Epoch)
	if got := e.heartbeat(t, old, "node_a"); len(got) != 0 {
		t.Fatalf("the superseded agent got %q", got)
	}
	e.wantDelivered(t, c, e.heartbeat(t, newHost, "node_a"))
}
