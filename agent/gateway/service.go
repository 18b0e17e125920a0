package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// grpcCodes maps engine error codes to gRPC status codes: the one table of
// this edge.
var grpcCodes = map[engine.Code]codes.Code{
	engine.EConflict:     codes.Aborted,
	engine.EForbidden:    codes.PermissionDenied,
	engine.EInternal:     codes.Internal,
	engine.EInvalid:      codes.InvalidArgument,
	engine.ENotFound:     codes.NotFound,
	engine.ERateLimited:  codes.ResourceExhausted,
	engine.EUnauthorized: codes.Unauthenticated,
	engine.EUnavailable:  codes.Unavailable,
	engine.ETooLarge:     codes.ResourceExhausted,
	engine.EUnsupported:  codes.Unimplemented,
}

// toStatus turns err into a gRPC status with only the safe message.
func toStatus(err error) error {
	c, ok := grpcCodes[engine.ErrorCode(err)]
	if !ok {
		c = codes.Internal
	}
	return status.Error(c, engine.ErrorMessage(err))
}

// service implements AgentService over the engine's ports.
type service struct {
	agentv1.UnimplementedAgentServiceServer
	cfg Config

	mu       sync.Mutex
	regs     map[string]cachedRegistration
	touched  map[string]time.Time
	inflight sync.WaitGroup
	statuses *statusRecorder
}

type cachedRegistration struct {
	reg     *engine.AgentRegistration
	fetched time.Time
}

func newService(cfg Config) *service {
	return &service{cfg: cfg, regs: map[string]cachedRegistration{}, touched: map[string]time.Time{},
		statuses: newStatusRecorder(cfg.Statuses, cfg.StatusTTL, cfg.Logger)}
}

// wait lets asynchronous LastSeenAt and status writes finish.
func (s *service) wait() {
	s.inflight.Wait()
	s.statuses.close()
}

// nodeRequest is every request made with a client certificate.
type nodeRequest interface{ GetNodeId() string }

// unauthenticated lists the calls made without a client certificate.
var unauthenticated = map[string]bool{
	agentv1.AgentService_Enroll_FullMethodName: true,
	"/grpc.health.v1.Health/Check":             true,
	"/grpc.health.v1.Health/Watch":             true,
	"/grpc.health.v1.Health/List":              true,
}

// authorize checks, on every call but Enroll, that the verified client
// certificate names the request's node and that its registration stands.
func (s *service) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if unauthenticated[info.FullMethod] {
		return next(ctx, req)
	}
	nodeID, serial, err := peerNode(ctx)
	if err != nil {
		return nil, err
	}
	r, ok := req.(nodeRequest)
	if !ok || r.GetNodeId() != nodeID {
		return nil, status.Error(codes.PermissionDenied, "the request is not for the certificate's node")
	}
	if err := s.checkRegistration(ctx, nodeID, serial); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

// authorizeStream is authorize for streaming calls: the certificate and
// its registration are checked when the stream opens, and every message
// received must name the certificate's node.
func (s *service) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if unauthenticated[info.FullMethod] {
		return next(srv, ss)
	}
	nodeID, serial, err := peerNode(ss.Context())
	if err != nil {
		return err
	}
	if err := s.checkRegistration(ss.Context(), nodeID, serial); err != nil {
		return err
	}
	return next(srv, &nodeStream{ServerStream: ss, nodeID: nodeID})
}

// nodeStream refuses any message received that is not for its node.
type nodeStream struct {
	grpc.ServerStream
	nodeID string
}

func (n *nodeStream) RecvMsg(m any) error {
	if err := n.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if r, ok := m.(nodeRequest); !ok || r.GetNodeId() != n.nodeID {
		return status.Error(codes.PermissionDenied, "the request is not for the certificate's node")
	}
	return nil
}

// peerNode returns the node id and serial of the peer's verified certificate.
func peerNode(ctx context.Context) (string, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", "", status.Error(codes.Unauthenticated, "a client certificate is required")
	}
	leaf := info.State.VerifiedChains[0][0]
	if time.Now().After(leaf.NotAfter) {
		// The handshake checked it; a long-lived connection outlives it.
		return "", "", status.Error(codes.Unauthenticated, "the client certificate has expired")
	}
	id, ok := agentv1.NodeIDFromCert(leaf)
	if !ok {
		return "", "", status.Error(codes.Unauthenticated, "the client certificate names no node")
	}
	return id, leaf.SerialNumber.Text(16), nil
}

// checkRegistration refuses revoked nodes and superseded certificates. A
// certificate the cached registration does not know is looked up afresh:
// it may come from an enrolment or renewal another gateway made.
func (s *service) checkRegistration(ctx context.Context, nodeID, serial string) error {
	reg, err := s.registration(ctx, nodeID, false)
	if err == nil && !reg.Accepts(serial) && reg.RevokedAt.IsZero() {
		reg, err = s.registration(ctx, nodeID, true)
	}
	if engine.IsCode(err, engine.ENotFound) {
		return status.Error(codes.PermissionDenied, "the node is not enrolled")
	}
	if err != nil {
		s.cfg.Logger.Error("agent registration lookup failed", "node_id", nodeID, "err", err)
		return status.Error(codes.Unavailable, "registration lookup failed")
	}
	if !reg.Accepts(serial) {
		return status.Error(codes.PermissionDenied, "the node's certificate is revoked")
	}
	return nil
}

// registration reads the node's registration, cached for a short time so a
// heartbeat costs no Store read; fresh skips the cache.
func (s *service) registration(ctx context.Context, nodeID string, fresh bool) (*engine.AgentRegistration, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.regs[nodeID]
	s.mu.Unlock()
	if ok && !fresh && now.Sub(c.fetched) < s.cfg.RegistrationCacheTTL {
		return c.reg, nil
	}
	reg, err := s.cfg.Identity.agents.GetAgentRegistration(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.regs[nodeID] = cachedRegistration{reg: reg, fetched: now}
	s.mu.Unlock()
	return reg, nil
}

func (s *service) forgetRegistration(nodeID string) {
	s.mu.Lock()
	delete(s.regs, nodeID)
	s.mu.Unlock()
}

func (s *service) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	e, err := s.cfg.Identity.Enroll(ctx, req.GetEnrollmentToken(), req.GetNodeId(), req.GetCsrDer(), req.GetAgentVersion())
	if err != nil {
		if engine.ErrorCode(err) == engine.EInternal {
			s.cfg.Logger.Error("agent enrolment failed", "node_id", req.GetNodeId(), "err", err)
		}
		return nil, toStatus(err)
	}
	s.forgetRegistration(req.GetNodeId())
	s.cfg.Logger.Info("agent enrolled", "node_id", req.GetNodeId(), "serial", e.Serial)
	return &agentv1.EnrollResponse{
		CertificateChainDer: [][]byte{e.CertificateDER},
		CaCertificateDer:    e.CADER,
		HeartbeatInterval:   durationpb.New(s.cfg.HeartbeatInterval),
		TrustedCaDer:        s.trustedCAs(),
	}, nil
}

// Renew issues a new certificate to an agent whose current one is valid.
func (s *service) Renew(ctx context.Context, req *agentv1.RenewRequest) (*agentv1.RenewResponse, error) {
	nodeID, serial, err := peerNode(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.cfg.Identity.Renew(ctx, nodeID, serial, req.GetCsrDer(), req.GetAgentVersion())
	if err != nil {
		if engine.ErrorCode(err) == engine.EInternal {
			s.cfg.Logger.Error("agent certificate renewal failed", "node_id", nodeID, "err", err)
		}
		return nil, toStatus(err)
	}
	s.forgetRegistration(nodeID)
	s.cfg.Logger.Info("agent certificate renewed", "node_id", nodeID, "serial", e.Serial, "previous", serial)
	return &agentv1.RenewResponse{CertificateChainDer: [][]byte{e.CertificateDER}, CaCertificateDer: e.CADER, TrustedCaDer: s.trustedCAs()}, nil
}

// trustedCAs is every agent CA to trust now, DER, the current one first.
func (s *service) trustedCAs() [][]byte {
	var ders [][]byte
	for _, ca := range s.cfg.Identity.CAs().Trusted() {
		ders = append(ders, ca.Raw)
	}
	return ders
}

func (s *service) Heartbeat(ctx context.Context, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	s.touch(req.GetNodeId(), req.GetAgentVersion())
	s.statuses.record(statusOf(req, time.Now()))
	_, serial, _ := peerNode(ctx) // authorize checked it
	cmds, err := s.pendingCommands(ctx, req.GetNodeId(), serial)
	if err != nil {
		if ctx.Err() == nil { // an agent that hung up, or a stop, is no error of ours
			s.cfg.Logger.Error("heartbeat: read queue", "node_id", req.GetNodeId(), "err", err)
		}
		return nil, toStatus(err)
	}
	return &agentv1.HeartbeatResponse{Commands: cmds, NextHeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval)}, nil
}

// touch records LastSeenAt at most once per TouchInterval per node, in the
// background: a slow Store never delays a heartbeat.
func (s *service) touch(nodeID, version string) {
	now := time.Now()
	s.mu.Lock()
	last, ok := s.touched[nodeID]
	due := !ok || now.Sub(last) >= s.cfg.TouchInterval
	if due {
		s.touched[nodeID] = now
	}
	s.mu.Unlock()
	if !due || s.cfg.Nodes == nil {
		return
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.cfg.Nodes.TouchNode(ctx, nodeID, now.UTC(), version); err != nil && !engine.IsCode(err, engine.ENotFound) {
			s.cfg.Logger.Warn("heartbeat: touch node", "node_id", nodeID, "err", err)
		}
	}()
}

// pendingCommands returns the queued commands of the node, whose agent
// holds the certificate of serial, and marks them delivered; ids whose
// command is gone or finished leave the queue, and so do STARTs whose
// signing leases are not the agent's host's, failed (see checkStart).
func (s *service) pendingCommands(ctx context.Context, nodeID, serial string) ([]*agentv1.Command, error) {
	ids, err := s.cfg.Cache.PendingCommands(ctx, nodeID, maxCommandsPerHeartbeat)
	if err != nil {
		return nil, err
	}
	var out []*agentv1.Command
	for _, id := range ids {
		c, err := s.cfg.Commands.GetCommand(ctx, id)
		if err != nil && !engine.IsCode(err, engine.ENotFound) {
			return nil, err
		}
		if c == nil || c.NodeID != nodeID || c.Status.Finished() {
			_ = s.cfg.Cache.AckCommand(ctx, nodeID, id)
			continue
		}
		ok, err := s.mayDeliver(ctx, nodeID, serial, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		s.markDelivered(ctx, c)
		out = append(out, &agentv1.Command{Id: c.ID, Type: agentv1.CommandType(c.Type), Payload: c.Payload, CreatedAt: timestamppb.New(c.CreatedAt)})
	}
	return out, nil
}

// mayDeliver applies checkStart's verdict: a refused START is failed.
func (s *service) mayDeliver(ctx context.Context, nodeID, serial string, c *engine.Command) (bool, error) {
	verdict, why, err := s.checkStart(ctx, nodeID, serial, c)
	switch {
	case err != nil:
		return false, err
	case verdict == refuseStart:
		return false, s.refuse(ctx, nodeID, c, why)
	}
	return verdict == deliverStart, nil
}

// markDelivered is best effort: the status is informative, the queue is
// what delivers.
func (s *service) markDelivered(ctx context.Context, c *engine.Command) {
	if c.Status != engine.CommandQueued {
		return
	}
	c.Status, c.UpdatedAt = engine.CommandDelivered, time.Now().UTC().Truncate(time.Microsecond)
	if err := s.cfg.Commands.UpdateCommand(ctx, c); err != nil && !engine.IsCode(err, engine.EConflict) {
		s.cfg.Logger.Warn("heartbeat: mark delivered", "command_id", c.ID, "err", err)
	}
}

func (s *service) ReportEvent(ctx context.Context, req *agentv1.ReportEventRequest) (*agentv1.ReportEventResponse, error) {
	var err error
	nodeID := req.GetNodeId()
	switch ev := req.GetEvent().(type) {
	case *agentv1.ReportEventRequest_Acknowledged:
		err = s.acknowledge(ctx, nodeID, ev.Acknowledged.GetCommandId())
	case *agentv1.ReportEventRequest_Progress:
		err = s.progress(ctx, nodeID, ev.Progress)
	case *agentv1.ReportEventRequest_Completed:
		err = s.finish(ctx, nodeID, ev.Completed.GetCommandId(), func(c *engine.Command) {
			c.Status, c.Result = engine.CommandCompleted, ev.Completed.GetResult()
		})
	case *agentv1.ReportEventRequest_Failed:
		err = s.finish(ctx, nodeID, ev.Failed.GetCommandId(), func(c *engine.Command) {
			c.Status, c.Error, c.Result = engine.CommandFailed, ev.Failed.GetError(), ev.Failed.GetDetails()
		})
	default:
		err = engine.Errorf(engine.EInvalid, "the event is empty")
	}
	if err != nil {
		if engine.ErrorCode(err) == engine.EInternal {
			s.cfg.Logger.Error("report event failed", "node_id", nodeID, "err", err)
		}
		return nil, toStatus(err)
	}
	return &agentv1.ReportEventResponse{}, nil
}

// acknowledge takes the command off the queue and records the ack once.
func (s *service) acknowledge(ctx context.Context, nodeID, id string) error {
	if _, err := s.nodeCommand(ctx, nodeID, id); err != nil {
		return err
	}
	if err := s.cfg.Cache.AckCommand(ctx, nodeID, id); err != nil {
		return err
	}
	return s.updateCommand(ctx, nodeID, id, func(c *engine.Command) bool {
		if c.Status != engine.CommandQueued && c.Status != engine.CommandDelivered {
			return false // already acknowledged or finished: a repeat
		}
		c.Status, c.AckedAt = engine.CommandAcknowledged, time.Now().UTC().Truncate(time.Microsecond)
		return true
	})
}

func (s *service) progress(ctx context.Context, nodeID string, p *agentv1.CommandProgress) error {
	if _, err := s.nodeCommand(ctx, nodeID, p.GetCommandId()); err != nil {
		return err
	}
	return s.cfg.Cache.SetProgress(ctx, &engine.CommandProgress{
		CommandID: p.GetCommandId(), Percent: p.GetPercent(), Bytes: int64(p.GetBytesDone()),
		Message: p.GetMessage(), Stalled: p.GetStalled(), UpdatedAt: time.Now().UTC(),
	}, s.cfg.ProgressTTL)
}

// finish applies a completion or failure once: a finished command is
// never changed again, so a result reported twice is applied once.
func (s *service) finish(ctx context.Context, nodeID, id string, apply func(*engine.Command)) error {
	if _, err := s.nodeCommand(ctx, nodeID, id); err != nil {
		return err
	}
	if err := s.cfg.Cache.AckCommand(ctx, nodeID, id); err != nil {
		return err
	}
	return s.updateCommand(ctx, nodeID, id, func(c *engine.Command) bool {
		if c.Status.Finished() {
			return false
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		if c.AckedAt.IsZero() {
			c.AckedAt = now
		}
		apply(c)
		c.FinishedAt = now
		return true
	})
}

// nodeCommand returns the command if it belongs to nodeID; ENotFound otherwise.
func (s *service) nodeCommand(ctx context.Context, nodeID, id string) (*engine.Command, error) {
	c, err := s.cfg.Commands.GetCommand(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.NodeID != nodeID {
		return nil, engine.Errorf(engine.ENotFound, "command %s not found", id)
	}
	return c, nil
}

// updateCommand re-reads and retries on a version conflict; change returns
// false when there is nothing to write.
func (s *service) updateCommand(ctx context.Context, nodeID, id string, change func(*engine.Command) bool) error {
	for attempt := 0; ; attempt++ {
		c, err := s.nodeCommand(ctx, nodeID, id)
		if err != nil {
			return err
		}
		if !change(c) {
			return nil
		}
		c.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		err = s.cfg.Commands.UpdateCommand(ctx, c)
		if err == nil || !engine.IsCode(err, engine.EConflict) || attempt >= 4 {
			return err
		}
	}
}

var _ agentv1.AgentServiceServer = (*service)(nil)
