package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
)

// nodeWorkflows records the terminations and migrations asked for; err
// fails them.
type nodeWorkflows struct {
	mu         sync.Mutex
	err        error
	terminated []string
	migrated   []string
	confirmed  []string // node:user
}

var _ engine.Workflows = (*nodeWorkflows)(nil)

func (w *nodeWorkflows) StartProvision(context.Context, string) error { return nil }

func (w *nodeWorkflows) StartTerminate(_ context.Context, nodeID, _ string) error {
	return w.record(&w.terminated, nodeID)
}

func (w *nodeWorkflows) StartMigrate(_ context.Context, nodeID string) error {
	return w.record(&w.migrated, nodeID)
}

func (w *nodeWorkflows) ConfirmSignerStopped(_ context.Context, nodeID, by string) error {
	return w.record(&w.confirmed, nodeID+":"+by)
}

func (w *nodeWorkflows) record(into *[]string, nodeID string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	*into = append(*into, nodeID)
	return nil
}

func (w *nodeWorkflows) started() (terminated, migrated []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.terminated), slices.Clone(w.migrated)
}

// nodesFixture is the API over a bbolt store with fake workflows and a
// recording bus, and the usual accounts.
type nodesFixture struct {
	*fixture
	*accounts
	workflows *nodeWorkflows
	events    *recordingEvents
	statuses  engine.AgentStatusCache
	bobJWT    string
}

func newNodesFixture(t *testing.T, opts ...fixtureOption) *nodesFixture {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(context.Background()), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(t, cache.Open(context.Background()), cache.Close)
	wf, events := &nodeWorkflows{}, &recordingEvents{}
	opts = append([]fixtureOption{func(c *web.Config) { c.Store, c.Workflows, c.Events = st, wf, events }}, opts...)
	opts = append(opts, func(c *web.Config) { c.Payments = newPayments(t, st, c.Events, &mock.Catalog{}) })
	f := newFixtureOn(t, st, cache, opts...)
	nf := &nodesFixture{fixture: f, accounts: newAccounts(f), workflows: wf, events: events, statuses: cache}
	nf.bobJWT, _ = f.login("bob@example.com")
	return nf
}

// node stores a running node of owner and returns it.
func (f *nodesFixture) node(owner string) *engine.Node {
	f.tb.Helper()
	now := time.Now().UTC()
	n := &engine.Node{
		ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: owner, ChainProfileID: "test-chain",
		NodeType: "full", State: engine.NodeRunning, AgentVersion: "0.4.1", LastSeenAt: now, CreatedAt: now, UpdatedAt: now,
		Host: engine.Host{Provider: "hetzner", ProviderID: "srv-1", Address: "203.0.113.7", Region: "fsn1", InstanceType: "cpx41"},
	}
	if err := f.store.CreateNode(context.Background(), n); err != nil {
		f.tb.Fatal(err)
	}
	return n
}

// command stores a command of nodeID in status, created at the given
// offset so the order is known.
func (f *nodesFixture) command(nodeID, id string, typ engine.CommandType, status engine.CommandStatus, at time.Duration) {
	f.tb.Helper()
	created := time.Now().UTC().Add(at)
	c := &engine.Command{ID: id, NodeID: nodeID, Type: typ, Status: status, CreatedAt: created, UpdatedAt: created}
	if err := f.store.CreateCommand(context.Background(), c); err != nil {
		f.tb.Fatal(err)
	}
}

// setState moves a node as a workflow would.
func (f *nodesFixture) setState(id string, to engine.NodeState) {
	f.tb.Helper()
	ctx := context.Background()
	n, err := f.store.GetNode(ctx, id)
	if err != nil {
		f.tb.Fatal(err)
	}
	if _, err := f.store.ChangeNodeState(ctx, n.Version, &engine.NodeStateChange{NodeID: id, To: to, Reason: "test", At: time.Now()}); err != nil {
		f.tb.Fatal(err)
	}
}

// payment stores a pending payment of userID and returns its id.
func (f *nodesFixture) payment(userID string) string {
	f.tb.Helper()
	p := &engine.Payment{ID: engine.NewID("pay"), UserID: userID, AmountCents: 1000, Currency: "EUR",
		Status: engine.PaymentPending, CreatedAt: time.Now().UTC()}
	if err := f.store.CreatePayment(context.Background(), p); err != nil {
		f.tb.Fatal(err)
	}
	return p.ID
}

type nodeScenario struct {
	name       string
	req        request
	wantStatus int
	wantBody   []string
	notBody    []string
}

func runNodeScenarios(t *testing.T, f requester, tests []nodeScenario) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %s", rec.Body, w)
				}
			}
			for _, w := range tt.notBody {
				if strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s holds %s", rec.Body, w)
				}
			}
		})
	}
}

func TestNodeReadScenarios(t *testing.T) {
	f := newNodesFixture(t)
	_, writeOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesWrite)
	_, subsOnly := f.apiKey(f.aliceJWT, engine.ScopeSubscriptionsRead)
	busy, idle, bobs := f.node(f.alice.ID), f.node(f.alice.ID), f.node(f.bob.ID)
	f.command(busy.ID, "cmd-queued", engine.CommandStart, engine.CommandQueued, -3*time.Minute)
	f.command(busy.ID, "cmd-delivered", engine.CommandRestart, engine.CommandDelivered, -2*time.Minute)
	f.command(busy.ID, "cmd-acked", engine.CommandUpgrade, engine.CommandAcknowledged, -time.Minute)
	f.command(idle.ID, "cmd-done", engine.CommandStop, engine.CommandCompleted, -time.Minute)
	list, one := "/api/v1/nodes", "/api/v1/nodes/"+busy.ID
	runNodeScenarios(t, f, []nodeScenario{
		{"list shows own nodes only", request{method: "GET", path: list, credential: f.aliceJWT}, 200, []string{busy.ID, idle.ID}, []string{bobs.ID, "next_after"}},
		{"list with a nodes:read key", request{method: "GET", path: list, credential: f.aliceReadKey}, 200, []string{busy.ID}, nil},
		{"list describes host and agent", request{method: "GET", path: list, credential: f.aliceJWT}, 200,
			[]string{`"host":{"provider":"hetzner","region":"fsn1","instance_type":"cpx41"}`, `"agent":{"version":"0.4.1","last_seen_at":`, `"state":"running"`}, []string{"203.0.113.7"}},
		{"list without nodes:read", request{method: "GET", path: list, credential: writeOnly}, 403, []string{"nodes:read"}, nil},
		{"list with a subscriptions-only key", request{method: "GET", path: list, credential: subsOnly}, 403, nil, nil},
		{"list without a credential", request{method: "GET", path: list}, 401, nil, nil},
		{"list by an administrator shows their own nodes", request{method: "GET", path: list, credential: f.rootJWT}, 200, []string{`"nodes":[]`}, []string{busy.ID}},

		{"get own", request{method: "GET", path: one, credential: f.aliceJWT}, 200, []string{`"id":"` + busy.ID, `"subscription_id":"` + busy.SubscriptionID, `"chain_profile_id":"test-chain"`, `"node_type":"full"`}, []string{"203.0.113.7"}},
		{"get shows the oldest command handed to the agent", request{method: "GET", path: one, credential: f.aliceReadKey}, 200,
			[]string{`"command":{"id":"cmd-delivered","type":"restart","status":"delivered"}`}, []string{"cmd-queued", "cmd-acked"}},
		{"get of an idle node has no command", request{method: "GET", path: "/api/v1/nodes/" + idle.ID, credential: f.aliceJWT}, 200, nil, []string{`"command"`}},
		{"get without nodes:read", request{method: "GET", path: one, credential: writeOnly}, 403, []string{"nodes:read"}, nil},
		{"get another tenant's is 404", request{method: "GET", path: one, credential: f.bobJWT}, 404, []string{`"code":"not_found"`}, nil},
		{"get another tenant's with their key is 404", request{method: "GET", path: one, credential: f.bobKey}, 404, nil, nil},
		{"get unknown is 404", request{method: "GET", path: "/api/v1/nodes/node_nope", credential: f.aliceJWT}, 404, nil, nil},
		{"an administrator reads any node with its address", request{method: "GET", path: one, credential: f.rootJWT}, 200, []string{busy.ID, `"address":"203.0.113.7"`}, nil},
		{"the bootstrap administrator reads any node", request{method: "GET", path: "/api/v1/nodes/" + bobs.ID, credential: bootstrapToken}, 200, []string{bobs.ID, `"address"`}, nil},
	})
}

func TestNodeWriteScenarios(t *testing.T) {
	f := newNodesFixture(t)
	_, readOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesRead)
	_, writeOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesWrite)
	mine, other, bobs, gone := f.node(f.alice.ID), f.node(f.alice.ID), f.node(f.bob.ID), f.node(f.alice.ID)
	f.setState(gone.ID, engine.NodeTerminating)
	f.setState(gone.ID, engine.NodeTerminated)
	pay, nodes := f.payment(f.alice.ID), "/api/v1/nodes/"
	runNodeScenarios(t, f, []nodeScenario{
		{"terminate own", request{method: "POST", path: nodes + mine.ID + "/terminate", credential: writeOnly}, 202, []string{`"id":"` + mine.ID, `"state":"running"`}, nil},
		{"terminate without nodes:write", request{method: "POST", path: nodes + other.ID + "/terminate", credential: readOnly}, 403, []string{"nodes:write"}, nil},
		{"terminate another tenant's is 404", request{method: "POST", path: nodes + bobs.ID + "/terminate", credential: f.aliceJWT}, 404, nil, nil},
		{"terminate unknown is 404", request{method: "POST", path: nodes + "node_nope/terminate", credential: f.aliceJWT}, 404, nil, nil},
		{"terminate a terminated node is a conflict", request{method: "POST", path: nodes + gone.ID + "/terminate", credential: f.aliceJWT}, 409, []string{"terminated"}, nil},
		{"an administrator terminates any node", request{method: "POST", path: nodes + bobs.ID + "/terminate", credential: f.rootJWT}, 202, []string{bobs.ID}, nil},

		{"migrate by the owner is 403", request{method: "POST", path: nodes + other.ID + "/migrate", credential: f.aliceJWT}, 403, []string{"admin"}, nil},
		{"migrate with nodes:write is 403", request{method: "POST", path: nodes + other.ID + "/migrate", credential: writeOnly}, 403, nil, nil},
		{"migrate unknown is 404", request{method: "POST", path: nodes + "node_nope/migrate", credential: f.rootJWT}, 404, nil, nil},
		{"migrate a terminated node is a conflict", request{method: "POST", path: nodes + gone.ID + "/migrate", credential: f.rootJWT}, 409, nil, nil},
		{"an administrator migrates any node", request{method: "POST", path: nodes + other.ID + "/migrate", credential: f.rootJWT}, 202, []string{other.ID}, nil},

		{"mark-paid by a customer is 403", request{method: "POST", path: "/api/v1/payments/" + pay + "/mark-paid", credential: f.aliceJWT}, 403, []string{"admin"}, nil},
		{"mark-paid of an unknown payment is 404", request{method: "POST", path: "/api/v1/payments/pay_nope/mark-paid", credential: f.rootJWT}, 404, nil, nil},
		{"mark-paid without a credential", request{method: "POST", path: "/api/v1/payments/" + pay + "/mark-paid"}, 401, nil, nil},
	})
	terminated, migrated := f.workflows.started()
	if want := []string{mine.ID, bobs.ID}; !slices.Equal(terminated, want) {
		t.Errorf("terminations = %v, want %v", terminated, want)
	}
	if want := []string{other.ID}; !slices.Equal(migrated, want) {
		t.Errorf("migrations = %v, want %v", migrated, want)
	}
	if n := f.events.count(); n != 0 {
		t.Errorf("refused mark-paid requests published %d events", n)
	}
}

// TestTerminateTwice: the fake workflows leave the state alone, so a
// repeat is accepted (StartTerminate is idempotent) until the workflow has
// moved the node to terminating.
func TestTerminateTwice(t *testing.T) {
	f := newNodesFixture(t)
	n := f.node(f.alice.ID)
	path := "/api/v1/nodes/" + n.ID + "/terminate"
	wantStatus(t, f.do(request{method: "POST", path: path, credential: f.aliceJWT}), 202, n.ID)
	wantStatus(t, f.do(request{method: "POST", path: path, credential: f.aliceJWT}), 202, n.ID)
	f.setState(n.ID, engine.NodeTerminating)
	wantStatus(t, f.do(request{method: "POST", path: path, credential: f.aliceJWT}), 409, "terminating")
	if got, _ := f.workflows.started(); len(got) != 2 {
		t.Fatalf("terminations = %v, want two starts before the conflict", got)
	}
}

func TestNodeWorkflowFailures(t *testing.T) {
	f := newNodesFixture(t)
	n := f.node(f.alice.ID)
	f.workflows.err = engine.Errorf(engine.EUnavailable, "temporal down")
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/terminate", credential: f.aliceJWT}), 503, "temporal down")
	f.workflows.err = engine.Errorf(engine.ENotFound, "node gone")
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/migrate", credential: f.rootJWT}), 404, "node gone")
}

func TestNodeRoutesWithoutWorkflowsOrBus(t *testing.T) {
	f := newNodesFixture(t, func(c *web.Config) { c.Workflows, c.Events = nil, nil })
	n, pay := f.node(f.alice.ID), f.payment(f.alice.ID)
	wantStatus(t, f.do(request{method: "GET", path: "/api/v1/nodes/" + n.ID, credential: f.aliceJWT}), 200, n.ID)
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/terminate", credential: f.aliceJWT}), 501, "not_supported")
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/migrate", credential: f.rootJWT}), 501, "not_supported")
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/payments/" + pay + "/mark-paid", credential: f.rootJWT}), 501, "not_supported")
}

func TestMarkPaidPublishesPaymentCompleted(t *testing.T) {
	f := newNodesFixture(t)
	pay := f.payment(f.alice.ID)
	path := "/api/v1/payments/" + pay + "/mark-paid"
	for _, credential := range []string{f.rootJWT, bootstrapToken} {
		wantStatus(t, f.do(request{method: "POST", path: path, credential: credential}), 202, `{"payment_id":"`+pay+`","status":"accepted"}`)
	}
	f.events.mu.Lock()
	got := slices.Clone(f.events.published)
	f.events.mu.Unlock()
	if len(got) != 2 || got[0].msgID != got[1].msgID {
		t.Fatalf("published %d events, want two with one message id (the bus stores one)", len(got))
	}
	var e engine.PaymentCompletedEvent
	if err := json.Unmarshal(got[0].data, &e); err != nil {
		t.Fatal(err)
	}
	if got[0].subject != engine.SubjectPaymentCompleted || e.PaymentID != pay || e.EventID != got[0].msgID {
		t.Fatalf("published %s %+v, want payment.completed for %s", got[0].subject, e, pay)
	}

	f.events.mu.Lock()
	f.events.down = true
	f.events.mu.Unlock()
	wantStatus(t, f.do(request{method: "POST", path: path, credential: f.rootJWT}), 503, "unavailable")
}

// pageOut is a decoded GET /api/v1/nodes.
type pageOut struct {
	Nodes     []struct{ ID string } `json:"nodes"`
	NextAfter string                `json:"next_after"`
}

func TestNodePagination(t *testing.T) {
	f := newNodesFixture(t)
	var want []string
	for range 5 {
		want = append(want, f.node(f.alice.ID).ID)
	}
	f.node(f.bob.ID)
	slices.Sort(want)

	var seen []string
	var sizes []int
	after := ""
	for range 10 {
		var page pageOut
		f.decode(f.do(request{method: "GET", path: "/api/v1/nodes?limit=2&after=" + url.QueryEscape(after), credential: f.aliceJWT}), 200, &page)
		sizes = append(sizes, len(page.Nodes))
		for _, n := range page.Nodes {
			seen = append(seen, n.ID)
		}
		if page.NextAfter == "" {
			break
		}
		after = page.NextAfter
	}
	if !slices.Equal(seen, want) || !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("pages of %v held %v, want pages of [2 2 1] holding %v", sizes, seen, want)
	}
	var exact pageOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/nodes?limit=5", credential: f.aliceJWT}), 200, &exact)
	if len(exact.Nodes) != 5 || exact.NextAfter != "" {
		t.Fatalf("a page holding the last node has %d nodes and next_after %q, want 5 and none", len(exact.Nodes), exact.NextAfter)
	}

	for _, q := range []string{"limit=0", "limit=-1", "limit=501", "limit=abc", "limit=1.5", "limit=", "limit=99999999999999999999", "after=" + strings.Repeat("x", 201), "after=%ff"} {
		t.Run(q, func(t *testing.T) {
			wantStatus(t, f.do(request{method: "GET", path: "/api/v1/nodes?" + q, credential: f.aliceJWT}), 400, `"code":"invalid"`)
		})
	}
	wantStatus(t, f.do(request{method: "GET", path: "/api/v1/nodes?limit=500", credential: f.aliceJWT}), 200, want[0])
}

// TestNodeRoutesNever5xxOnBadInput: odd ids, bodies and queries are
// client errors, never server errors.
func TestNodeRoutesNever5xxOnBadInput(t *testing.T) {
	f := newNodesFixture(t)
	ids := []string{"%ff", "%00", strings.Repeat("n", 5000), "node_%E2%80%AE", "..%2F..", "'%20OR%201=1--", "%20"}
	bodies := []string{"", "{", `{"state":"terminated"}`, strings.Repeat("[", 100<<10)}
	for _, id := range ids {
		for i, body := range bodies {
			for _, route := range []struct{ method, path, credential string }{
				{"GET", "/api/v1/nodes/" + id, f.aliceJWT},
				{"POST", "/api/v1/nodes/" + id + "/terminate", f.aliceJWT},
				{"POST", "/api/v1/nodes/" + id + "/migrate", f.rootJWT},
				{"POST", "/api/v1/payments/" + id + "/mark-paid", f.rootJWT},
				{"GET", "/api/v1/nodes?after=" + id + "&limit=" + id, f.aliceJWT},
			} {
				rec := f.do(request{method: route.method, path: route.path, credential: route.credential, body: body})
				if rec.Code >= 500 || rec.Code == 429 {
					t.Errorf("%s %s with body %d: %d %s", route.method, route.path, i, rec.Code, rec.Body)
				}
			}
		}
	}
	if terminated, migrated := f.workflows.started(); len(terminated)+len(migrated) != 0 || f.events.count() != 0 {
		t.Errorf("bad input started workflows %v %v or published %d events", terminated, migrated, f.events.count())
	}
}

// TestNodeJSONShape pins the field names clients rely on.
func TestNodeJSONShape(t *testing.T) {
	f := newNodesFixture(t)
	n := f.node(f.alice.ID)
	var out map[string]any
	f.decode(f.do(request{method: "GET", path: "/api/v1/nodes/" + n.ID, credential: f.aliceJWT}), 200, &out)
	var keys []string
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"agent", "chain_profile_id", "created_at", "host", "id", "node_type", "state", "state_reason", "subscription_id", "updated_at"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("node fields = %v, want %v", keys, want)
	}
}

func TestNodeShowsItsAgentsLatestHeartbeat(t *testing.T) {
	f := newNodesFixture(t)
	n := f.node(f.alice.ID)
	get := func() map[string]any {
		var out struct{ Agent map[string]any }
		f.decode(f.do(request{method: "GET", path: "/api/v1/nodes/" + n.ID, credential: f.aliceJWT}), 200, &out)
		return out.Agent
	}
	if agent := get(); agent["health"] != nil || agent["block_height"] != nil {
		t.Fatalf("agent without a heartbeat = %v, want no health or height", agent)
	}
	now := time.Now().UTC()
	st := &engine.AgentStatus{NodeID: n.ID, Health: engine.AppHealthHealthy, Syncing: true, BlockHeight: 1234, Peers: 8, MetricsAt: now, ReportedAt: now}
	if err := f.statuses.SetAgentStatus(context.Background(), st, time.Minute); err != nil {
		t.Fatal(err)
	}
	agent := get()
	if agent["health"] != "healthy" || agent["syncing"] != true || agent["block_height"] != 1234.0 || agent["peers"] != 8.0 {
		t.Fatalf("agent = %v, want healthy, syncing at 1234 with 8 peers", agent)
	}
}

// TestAnotherTenantsNodeLooksMissing: the 404 for somebody else's node is
// the 404 for a node that does not exist, word for word.
func TestAnotherTenantsNodeLooksMissing(t *testing.T) {
	f := newNodesFixture(t)
	bobs := f.node(f.bob.ID)
	for _, suffix := range []string{"", "/terminate"} {
		method := map[string]string{"": "GET", "/terminate": "POST"}[suffix]
		theirs := f.do(request{method: method, path: "/api/v1/nodes/" + bobs.ID + suffix, credential: f.aliceJWT})
		missing := f.do(request{method: method, path: "/api/v1/nodes/node_nope" + suffix, credential: f.aliceJWT})
		if theirs.Code != 404 || theirs.Body.String() != missing.Body.String() {
			t.Errorf("%s: another tenant's node answers %d %s, a missing one %d %s", method, theirs.Code, theirs.Body, missing.Code, missing.Body)
		}
	}
}

// TestServerErrorsAreLoggedThroughTheConfiguredLogger: a 5xx says little to
// the client, so its cause must reach the operator's log, not the
// process-wide default.
func TestServerErrorsAreLoggedThroughTheConfiguredLogger(t *testing.T) {
	logs := &testenv.LogBuffer{}
	f := newNodesFixture(t, func(c *web.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	f.workflows.err = errors.New("temporal frontend unreachable")
	n := f.node(f.alice.ID)
	rec := f.do(request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/terminate", credential: f.aliceJWT})
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "unreachable") {
		t.Fatalf("terminate = %d %s; want 500 without the cause", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "temporal frontend unreachable") {
		t.Fatalf("log %q lacks the cause of the 500", logs.String())
	}
}
