package agentv1_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

func TestCommandTypesAreTheEngineValues(t *testing.T) {
	tests := []struct {
		engine engine.CommandType
		wire   agentv1.CommandType
	}{
		{engine.CommandConfigure, agentv1.CommandType_COMMAND_TYPE_CONFIGURE},
		{engine.CommandStart, agentv1.CommandType_COMMAND_TYPE_START},
		{engine.CommandStop, agentv1.CommandType_COMMAND_TYPE_STOP},
		{engine.CommandRestart, agentv1.CommandType_COMMAND_TYPE_RESTART},
		{engine.CommandCaptureKey, agentv1.CommandType_COMMAND_TYPE_CAPTURE_KEY},
		{engine.CommandUpgrade, agentv1.CommandType_COMMAND_TYPE_UPGRADE},
		{engine.CommandDeliverKeys, agentv1.CommandType_COMMAND_TYPE_DELIVER_KEYS},
		{engine.CommandSnapshot, agentv1.CommandType_COMMAND_TYPE_SNAPSHOT},
		{engine.CommandRestoreSnapshot, agentv1.CommandType_COMMAND_TYPE_RESTORE_SNAPSHOT},
	}
	for _, tt := range tests {
		if int32(tt.engine) != int32(tt.wire) {
			t.Errorf("%s = %d on the wire, engine says %d", tt.wire, tt.wire, tt.engine)
		}
	}
	// Every wire type but UNSPECIFIED has an engine counterpart.
	if got, want := len(agentv1.CommandType_name)-1, len(tests); got != want {
		t.Errorf("the protocol has %d command types, the table %d", got, want)
	}
}

// fakeGateway answers with fixed values and remembers the last event.
type fakeGateway struct {
	agentv1.UnimplementedAgentServiceServer
	events chan *agentv1.ReportEventRequest
}

func (f *fakeGateway) Enroll(_ context.Context, r *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	return &agentv1.EnrollResponse{
		CertificateChainDer: [][]byte{append([]byte("cert-for-"), r.GetCsrDer()...)},
		CaCertificateDer:    []byte("ca"),
		HeartbeatInterval:   durationpb.New(30 * time.Second),
	}, nil
}

func (f *fakeGateway) Heartbeat(_ context.Context, r *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	payload, err := agentv1.MarshalPayload(&agentv1.CaptureKeyPayload{KeyName: "node_key", KeyPath: "config/node_key.json"})
	if err != nil {
		return nil, err
	}
	return &agentv1.HeartbeatResponse{
		Commands: []*agentv1.Command{{
			Id: "cmd-for-" + r.GetNodeId(), Type: agentv1.CommandType_COMMAND_TYPE_CAPTURE_KEY,
			Payload: payload, CreatedAt: timestamppb.Now(),
		}},
		NextHeartbeatInterval: durationpb.New(15 * time.Second),
	}, nil
}

func (f *fakeGateway) ReportEvent(_ context.Context, r *agentv1.ReportEventRequest) (*agentv1.ReportEventResponse, error) {
	f.events <- r
	return &agentv1.ReportEventResponse{}, nil
}

func startFakeGateway(t *testing.T) (agentv1.AgentServiceClient, *fakeGateway) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	gw := &fakeGateway{events: make(chan *agentv1.ReportEventRequest, 1)}
	agentv1.RegisterAgentServiceServer(srv, gw)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return agentv1.NewAgentServiceClient(conn), gw
}

func TestAgentServiceRoundTrip(t *testing.T) {
	client, gw := startFakeGateway(t)
	ctx := t.Context()

	enrolled, err := client.Enroll(ctx, &agentv1.EnrollRequest{EnrollmentToken: "t", NodeId: "n1", CsrDer: []byte("csr"), AgentVersion: "1.0.0"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if got := string(enrolled.GetCertificateChainDer()[0]); got != "cert-for-csr" || enrolled.GetHeartbeatInterval().AsDuration() != 30*time.Second {
		t.Errorf("Enroll = %v", enrolled)
	}

	hb, err := client.Heartbeat(ctx, &agentv1.HeartbeatRequest{
		NodeId: "n1", RunningCommandIds: []string{"c0"}, AppHealth: agentv1.AppHealth_APP_HEALTH_DEGRADED,
		Sync:    &agentv1.SyncStatus{Syncing: true, CurrentHeight: 10, HighestHeight: 20, Peers: 3},
		Metrics: &agentv1.MetricsSnapshot{Values: map[string]float64{"chain_peers": 3}, CollectedAt: timestamppb.Now()},
	})
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	cmd := hb.GetCommands()[0]
	var capture agentv1.CaptureKeyPayload
	if err := agentv1.UnmarshalPayload(cmd.GetPayload(), &capture); err != nil {
		t.Fatal(err)
	}
	if cmd.GetId() != "cmd-for-n1" || cmd.GetType() != agentv1.CommandType_COMMAND_TYPE_CAPTURE_KEY || capture.GetKeyPath() != "config/node_key.json" {
		t.Errorf("Heartbeat command = %v, payload %v", cmd, &capture)
	}

	sent := &agentv1.ReportEventRequest{NodeId: "n1", Event: &agentv1.ReportEventRequest_Progress{
		Progress: &agentv1.CommandProgress{CommandId: "c0", Percent: 42.5, BytesDone: 1 << 40, BytesTotal: 130 << 30, Stalled: true},
	}}
	if _, err := client.ReportEvent(ctx, sent); err != nil {
		t.Fatalf("ReportEvent: %v", err)
	}
	if got := <-gw.events; !proto.Equal(got, sent) {
		t.Errorf("gateway got %v, want %v", got, sent)
	}
}

// The control plane writes payloads with encoding/json (the engine has no
// generated code); the agent must read them.
func TestPayloadFromPlainJSON(t *testing.T) {
	type artifact struct {
		URL    string `json:"url"`
		SHA256 string `json:"sha256"`
	}
	type configFile struct {
		Path    string `json:"path"`
		Content []byte `json:"content"`
		Mode    uint32 `json:"mode"`
	}
	engineSide, err := json.Marshal(struct {
		Component     string       `json:"component"`
		Version       string       `json:"version"`
		Artifact      artifact     `json:"artifact"`
		ConfigChanges []configFile `json:"config_changes"`
		FromTheFuture string       `json:"from_the_future"`
	}{"geth", "v1.15.0", artifact{"https://example.test/geth", "abc"}, []configFile{{"config.toml", []byte("x = 1\n"), 0o640}}, "ignored"})
	if err != nil {
		t.Fatal(err)
	}

	var got agentv1.UpgradePayload
	if err := agentv1.UnmarshalPayload(engineSide, &got); err != nil {
		t.Fatalf("UnmarshalPayload(%s): %v", engineSide, err)
	}
	want := &agentv1.UpgradePayload{
		Component: "geth", Version: "v1.15.0",
		Artifact:      &agentv1.Artifact{Url: "https://example.test/geth", Sha256: "abc"},
		ConfigChanges: []*agentv1.ConfigFile{{Path: "config.toml", Content: []byte("x = 1\n"), Mode: 0o640}},
	}
	if !proto.Equal(&got, want) {
		t.Errorf("decoded %v, want %v", &got, want)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
		into proto.Message
	}{
		{"upgrade outcome with enums", &agentv1.UpgradeOutcome{
			Completed: []agentv1.UpgradeAction{agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE},
			Failed:    agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT, RolledBack: true,
		}, &agentv1.UpgradeOutcome{}},
		{"captured key", &agentv1.CaptureKeyResult{KeyName: "k", EncryptedKey: []byte{0, 1, 2, 255}}, &agentv1.CaptureKeyResult{}},
		{"configure", &agentv1.ConfigurePayload{
			ChainProfileId: "ethereum-holesky", Inputs: map[string]string{"validator_address": "0x1"},
			Components: []*agentv1.Component{{Name: "geth", Args: []string{"--holesky"}}},
		}, &agentv1.ConfigurePayload{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := agentv1.MarshalPayload(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := agentv1.UnmarshalPayload(b, tt.into); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(tt.into, tt.msg) {
				t.Errorf("round trip of %s gave %v", b, tt.into)
			}
		})
	}
}

func TestEmptyPayloadDecodesEmpty(t *testing.T) {
	p := &agentv1.CaptureKeyPayload{KeyName: "left over"}
	if err := agentv1.UnmarshalPayload(nil, p); err != nil || p.GetKeyName() != "" {
		t.Errorf("UnmarshalPayload(nil) = %v, left %v", err, p)
	}
	if err := agentv1.UnmarshalPayload([]byte("{"), p); err == nil {
		t.Error("bad JSON decoded without error")
	}
}
