package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// enrolled enrols nodeID over the wire and returns a client using its
// certificate.
func (e *testEnv) enrolled(t *testing.T, nodeID string) (agentv1.AgentServiceClient, *agentCredentials) {
	t.Helper()
	creds, err := enroll(context.Background(), AgentConfig{
		GatewayAddr: e.addr, NodeID: nodeID, EnrollmentToken: e.token(t, nodeID), CAFile: e.caFile, DataDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e.client(t, creds.tlsConfig("127.0.0.1")), creds
}

func (e *testEnv) client(t *testing.T, cfg *tls.Config) agentv1.AgentServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

// newCSR is a CSR for a fresh key, naming cn.
func newCSR(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Patience)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Errorf("%s: %v; want %s", what, err, want)
	}
}

func TestGatewayChecksTheCertificateOnEveryCall(t *testing.T) {
	e := newTestEnv(t)
	clientA, credsA := e.enrolled(t, "node_a")
	e.enrolled(t, "node_b")
	cmdB := e.enqueue(t, "node_b", engine.CommandStart, nil)
	ctx := rpcCtx(t)

	if _, err := clientA.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"}); err != nil {
		t.Fatalf("node A's own heartbeat: %v", err)
	}
	_, err := clientA.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_b"})
	wantCode(t, "A heartbeats as B", err, codes.PermissionDenied)
	_, err = clientA.ReportEvent(ctx, &agentv1.ReportEventRequest{NodeId: "node_b", Event: &agentv1.ReportEventRequest_Completed{Completed: &agentv1.CommandCompleted{CommandId: cmdB}}})
	wantCode(t, "A reports for B", err, codes.PermissionDenied)
	_, err = clientA.ReportEvent(ctx, &agentv1.ReportEventRequest{NodeId: "node_a", Event: &agentv1.ReportEventRequest_Completed{Completed: &agentv1.CommandCompleted{CommandId: cmdB}}})
	wantCode(t, "A completes B's command as itself", err, codes.NotFound)
	if c := e.command(t, cmdB); c.Status != engine.CommandQueued {
		t.Errorf("B's command is %s after A's attempts", c.Status)
	}

	anonymous := e.client(t, (&agentCredentials{ca: e.identity.CA()}).tlsConfig("127.0.0.1"))
	_, err = anonymous.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
	wantCode(t, "no client certificate", err, codes.Unauthenticated)

	// A certificate from another CA is refused in the TLS handshake, before
	// any call: the client sees the connection fail.
	otherCA, otherKey := testCA(t)
	other := gateway.NewIdentity(otherCA, otherKey, e.store)
	tok, _ := other.IssueEnrollmentToken(ctx, "node_x", "", time.Hour)
	forged, err := other.Enroll(ctx, tok, "node_x", newCSR(t, "node_a"), "")
	if err != nil {
		t.Fatal(err)
	}
	forgedCreds := &agentCredentials{ca: e.identity.CA(), cert: tls.Certificate{Certificate: [][]byte{forged.CertificateDER}, PrivateKey: credsA.cert.PrivateKey}}
	_, err = e.client(t, forgedCreds.tlsConfig("127.0.0.1")).Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_x"})
	if err == nil || status.Code(err) == codes.OK {
		t.Error("a certificate from another CA was accepted")
	}
}

func TestGatewayRefusesRevokedAndSupersededCertificates(t *testing.T) {
	e := newTestEnv(t)
	ctx := rpcCtx(t)
	oldClient, _ := e.enrolled(t, "node_a")
	newClient, _ := e.enrolled(t, "node_a") // enrolled again: the first certificate is superseded
	// The gateway that enrolled forgot its cached registration.
	_, err := oldClient.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
	wantCode(t, "superseded certificate", err, codes.PermissionDenied)
	if _, err := newClient.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"}); err != nil {
		t.Fatalf("current certificate: %v", err)
	}
	if err := e.identity.Revoke(ctx, "node_a"); err != nil {
		t.Fatal(err)
	}
	err = waitRefused(t, newClient, "node_a", "the revocation to reach the gateway past its registration cache")
	wantCode(t, "revoked heartbeat", err, codes.PermissionDenied)
	_, err = newClient.ReportEvent(ctx, &agentv1.ReportEventRequest{NodeId: "node_a", Event: &agentv1.ReportEventRequest_Acknowledged{Acknowledged: &agentv1.CommandAcknowledged{CommandId: "x"}}})
	wantCode(t, "revoked report", err, codes.PermissionDenied)
}

func TestEnrollOverTheWireRefusesAReusedToken(t *testing.T) {
	e := newTestEnv(t)
	tok := e.token(t, "node_a")
	cfg := AgentConfig{GatewayAddr: e.addr, NodeID: "node_a", EnrollmentToken: tok, CAFile: e.caFile, DataDir: t.TempDir()}
	if _, err := enroll(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if _, err := enroll(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), errEnrollRejected.Error()) {
		t.Fatalf("second enrolment with the token = %v; want refused", err)
	}
	if strings.Contains(e.logs.String(), tok) {
		t.Error("the enrollment token appears in the gateway's logs")
	}
}

func TestHeartbeatDeliversQueuedCommandsUntilAcknowledged(t *testing.T) {
	e := newTestEnv(t)
	client, _ := e.enrolled(t, "node_a")
	ctx := rpcCtx(t)
	first := e.enqueue(t, "node_a", engine.CommandConfigure, []byte(`{"chain_profile_id":"sim"}`))
	second := e.enqueue(t, "node_a", engine.CommandStart, nil)

	for range 2 { // unacknowledged commands keep coming back, oldest first
		resp, err := client.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Commands) != 2 || resp.Commands[0].Id != first || resp.Commands[1].Id != second {
			t.Fatalf("commands = %v; want %s then %s", resp.Commands, first, second)
		}
		if resp.Commands[0].Type != agentv1.CommandType_COMMAND_TYPE_CONFIGURE || string(resp.Commands[0].Payload) != `{"chain_profile_id":"sim"}` {
			t.Errorf("first command = %v", resp.Commands[0])
		}
	}
	if c := e.command(t, first); c.Status != engine.CommandDelivered {
		t.Errorf("status after delivery = %s", c.Status)
	}
	report(t, client, "node_a", &agentv1.ReportEventRequest_Acknowledged{Acknowledged: &agentv1.CommandAcknowledged{CommandId: first}})
	resp, _ := client.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
	if len(resp.Commands) != 1 || resp.Commands[0].Id != second {
		t.Fatalf("after ack, commands = %v; want only %s", resp.Commands, second)
	}
	if c := e.command(t, first); c.Status != engine.CommandAcknowledged || c.AckedAt.IsZero() {
		t.Errorf("after ack: %s, acked at %v", c.Status, c.AckedAt)
	}
}

func report(t *testing.T, client agentv1.AgentServiceClient, nodeID string, ev any) {
	t.Helper()
	req := &agentv1.ReportEventRequest{NodeId: nodeID}
	switch ev := ev.(type) {
	case *agentv1.ReportEventRequest_Acknowledged:
		req.Event = ev
	case *agentv1.ReportEventRequest_Progress:
		req.Event = ev
	case *agentv1.ReportEventRequest_Completed:
		req.Event = ev
	case *agentv1.ReportEventRequest_Failed:
		req.Event = ev
	}
	if _, err := client.ReportEvent(rpcCtx(t), req); err != nil {
		t.Fatalf("report %T: %v", ev, err)
	}
}

func TestReportEventRecordsProgressAndAppliesAResultOnce(t *testing.T) {
	e := newTestEnv(t)
	client, _ := e.enrolled(t, "node_a")
	id := e.enqueue(t, "node_a", engine.CommandCaptureKey, nil)

	report(t, client, "node_a", &agentv1.ReportEventRequest_Progress{Progress: &agentv1.CommandProgress{CommandId: id, Percent: 40, BytesDone: 400, Stalled: true}})
	p, err := e.cache.GetProgress(context.Background(), id)
	if err != nil || p.Percent != 40 || p.Bytes != 400 || !p.Stalled {
		t.Fatalf("progress = %+v, %v", p, err)
	}
	report(t, client, "node_a", &agentv1.ReportEventRequest_Completed{Completed: &agentv1.CommandCompleted{CommandId: id, Result: []byte(`{"key_name":"k"}`)}})
	done := e.command(t, id)
	if done.Status != engine.CommandCompleted || string(done.Result) != `{"key_name":"k"}` || done.FinishedAt.IsZero() {
		t.Fatalf("after completion: %+v", done)
	}
	// Reported again (an outbox resent after a lost reply), or contradicted
	// by a late failure: nothing changes.
	report(t, client, "node_a", &agentv1.ReportEventRequest_Completed{Completed: &agentv1.CommandCompleted{CommandId: id, Result: []byte(`{"key_name":"other"}`)}})
	report(t, client, "node_a", &agentv1.ReportEventRequest_Failed{Failed: &agentv1.CommandFailed{CommandId: id, Error: "late"}})
	report(t, client, "node_a", &agentv1.ReportEventRequest_Acknowledged{Acknowledged: &agentv1.CommandAcknowledged{CommandId: id}})
	if again := e.command(t, id); again.Version != done.Version || again.Status != engine.CommandCompleted {
		t.Fatalf("a repeated report changed the command: %+v", again)
	}
	resp, _ := client.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{NodeId: "node_a"})
	if len(resp.Commands) != 0 {
		t.Errorf("a finished command is still delivered: %v", resp.Commands)
	}
}

func TestReportEventFailureKeepsTheErrorText(t *testing.T) {
	e := newTestEnv(t)
	client, _ := e.enrolled(t, "node_a")
	id := e.enqueue(t, "node_a", engine.CommandStart, nil)
	report(t, client, "node_a", &agentv1.ReportEventRequest_Failed{Failed: &agentv1.CommandFailed{CommandId: id, Error: "not configured"}})
	if c := e.command(t, id); c.Status != engine.CommandFailed || c.Error != "not configured" || c.FinishedAt.IsZero() {
		t.Fatalf("after failure: %+v", c)
	}
	_, err := client.ReportEvent(rpcCtx(t), &agentv1.ReportEventRequest{NodeId: "node_a", Event: &agentv1.ReportEventRequest_Acknowledged{Acknowledged: &agentv1.CommandAcknowledged{CommandId: "cmd_unknown"}}})
	wantCode(t, "unknown command", err, codes.NotFound)
}

// slowNodes counts LastSeenAt writes; with release set, each write waits
// until release is closed, as a store that hangs.
type slowNodes struct {
	engine.NodeStore
	release chan struct{}
	holding atomic.Int64 // writes waiting for release
	touches atomic.Int64
	mu      sync.Mutex
	seen    map[string]time.Time
}

func (s *slowNodes) TouchNode(ctx context.Context, id string, seen time.Time, v string) error {
	if s.release != nil {
		s.holding.Add(1)
		defer s.holding.Add(-1)
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.touches.Add(1)
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	s.seen[id] = seen
	s.mu.Unlock()
	return nil
}

func TestHeartbeatTouchesTheNodeAtMostOncePerSecondWithoutWaitingForTheStore(t *testing.T) {
	e := newTestEnv(t)
	slow := &slowNodes{NodeStore: e.store, release: make(chan struct{})}
	e.nodes = slow
	stopGateway(e.gw)
	e.startGateway(t)
	client, _ := e.enrolled(t, "node_a")
	// The store holds every write until the heartbeats are done: a write
	// still held once they all returned is one no heartbeat waited for.
	start := time.Now()
	for range 20 {
		if _, err := client.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{NodeId: "node_a"}); err != nil {
			t.Fatal(err)
		}
	}
	spanned := time.Since(start)
	waitFor(t, time.Second, "a touch held by the store after the heartbeats returned (a heartbeat waited for the store)", func() bool {
		return slow.holding.Load() > 0
	})
	close(slow.release)
	stopGateway(e.gw) // lets every write under way finish
	// Touches at least a second apart fit that many times in the span of
	// the heartbeats, and once more: one on a quiet machine.
	most := 1 + int64(spanned/gateway.DefaultTouchInterval)
	if n := slow.touches.Load(); n < 1 || n > most {
		t.Errorf("%d touches for 20 heartbeats over %s; want 1 to %d, one a second at most", n, spanned, most)
	}
}
