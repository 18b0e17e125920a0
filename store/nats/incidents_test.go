package nats_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestIncidentEventsAreKeptOnTheEventStream: incident events are stored
// once per delivery id on a stream with the configured limits, and node
// state changes, still announced without the stream, reach their
// subscribers and are kept too.
func TestIncidentEventsAreKeptOnTheEventStream(t *testing.T) {
	ctx := context.Background()
	bus := openEmbedded(t, t.TempDir(), "127.0.0.1:0")
	nc, err := nats.Connect(bus.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	announced, err := nc.SubscribeSync("events.node.*.state_changed")
	if err != nil {
		t.Fatal(err)
	}

	notifier := incidents.NewBusNotifier(bus, incidents.EventStream(48*time.Hour, 1<<20))
	in := &engine.Incident{ID: "inc_1", NodeID: "node_a", DedupeKey: "policy:stuck", Severity: engine.SeverityCritical,
		Summary: "node is stuck", OpenedAt: time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)}
	notify := func(e engine.IncidentEvent) {
		t.Helper()
		n := incidents.Notification{DeliveryID: incidents.DeliveryID(in.ID, e), Event: e, Incident: in, ChainProfileID: "geth-dev"}
		if err := notifier.Notify(ctx, n); err != nil {
			t.Fatalf("notify %s: %v", e, err)
		}
	}
	notify(engine.IncidentOpened)
	notify(engine.IncidentOpened) // a repeat after a crash
	in.ResolvedAt = in.OpenedAt.Add(time.Hour)
	notify(engine.IncidentResolved)
	if err := bus.Announce(ctx, engine.NodeStateChangedSubject("node_a"), []byte(`{"to":"degraded"}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := announced.NextMsg(testenv.Patience); err != nil || string(m.Data) != `{"to":"degraded"}` {
		t.Fatalf("announcement: %v, %v; want it delivered to the core subscriber", m, err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, incidents.EventStreamName)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the announcement on the stream", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 3
	})
	info, _ := stream.Info(ctx)
	if cfg := info.Config; cfg.MaxAge != 48*time.Hour || cfg.MaxBytes != 1<<20 || cfg.Duplicates != time.Hour || cfg.Subjects[0] != "events.>" {
		t.Errorf("stream config: max age %v, max bytes %d, duplicates %v, subjects %v", cfg.MaxAge, cfg.MaxBytes, cfg.Duplicates, cfg.Subjects)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "events.node.node_a.incident_resolved")
	if err != nil {
		t.Fatal(err)
	}
	var p incidents.Payload
	if err := json.Unmarshal(msg.Data, &p); err != nil {
		t.Fatal(err)
	}
	if p.DeliveryID != "inc_1:resolved" || p.Event != engine.IncidentResolved || p.Incident.ChainProfileID != "geth-dev" || !p.Incident.ResolvedAt.Equal(in.ResolvedAt) {
		t.Errorf("payload = %+v", p)
	}
	if msg.Header.Get(nats.MsgIdHdr) != "inc_1:resolved" {
		t.Errorf("message id = %q, want the delivery id", msg.Header.Get(nats.MsgIdHdr))
	}

	// An incident of no node (a dead-lettered payment) has its own subject.
	payment := &engine.Incident{ID: "inc_2", DedupeKey: "payment-dead-letter:evt-1", Severity: engine.SeverityCritical,
		Summary: "a payment event was given up", OpenedAt: in.OpenedAt}
	if err := notifier.Notify(ctx, incidents.Notification{DeliveryID: incidents.DeliveryID(payment.ID, engine.IncidentOpened),
		Event: engine.IncidentOpened, Incident: payment}); err != nil {
		t.Fatalf("notify a node-less incident: %v", err)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, "events.incident.opened"); err != nil {
		t.Fatalf("the node-less incident on the stream: %v", err)
	}
}
