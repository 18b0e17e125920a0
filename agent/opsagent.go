package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AgentConfig configures the ops-agent (`hoodcloud agent`).
type AgentConfig struct {
	// GatewayAddr is the agent gateway's host:port. Required.
	GatewayAddr string
	// ServerName is checked against the gateway's certificate; default the
	// host of GatewayAddr.
	ServerName string
	// NodeID is the node this agent runs. Required.
	NodeID string
	// EnrollmentToken and CAFile (PEM of the appliance agent CA) are needed
	// only until the agent has enrolled.
	EnrollmentToken string
	CAFile          string
	// DataDir keeps the key, certificates, outbox and seen command ids.
	// Required; created 0700.
	DataDir string
	// ChainDir is the chain data directory (files, keys); default DataDir/chain.
	ChainDir string
	// HeartbeatInterval overrides what the gateway asks for; default the
	// gateway's, else 30s. Each wait has ±10% jitter.
	HeartbeatInterval time.Duration
	// IntervalOnly heartbeats at the interval only, also right after a
	// command finished (see followUps); for comparison.
	IntervalOnly bool
	// ProgressCheckInterval is how often a running command's progress is
	// checked and reported; default 30s.
	ProgressCheckInterval time.Duration
	// StallChecks is how many checks without progress mark a command
	// stalled; default 5.
	StallChecks int
	// ChainMetricsInterval is how often the chain's metrics (each
	// component's MetricsSpec) are scraped for the heartbeat; default
	// DefaultChainMetricsInterval.
	ChainMetricsInterval time.Duration
	// ChainStallSamples is how many samples in a row with the same block
	// height, while the node is not syncing, make it degraded; default
	// DefaultChainStallSamples.
	ChainStallSamples int
	// MinBackoff and MaxBackoff bound the retry delay after a failed call;
	// defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Runtime runs the chain; default a process runtime in ChainDir.
	Runtime Runtime
	Version string
	Logger  *slog.Logger
}

func (c AgentConfig) withDefaults() AgentConfig {
	if c.ChainDir == "" && c.DataDir != "" {
		c.ChainDir = filepath.Join(c.DataDir, "chain")
	}
	if c.ProgressCheckInterval <= 0 {
		c.ProgressCheckInterval = 30 * time.Second
	}
	if c.StallChecks <= 0 {
		c.StallChecks = 5
	}
	if c.ChainMetricsInterval <= 0 {
		c.ChainMetricsInterval = DefaultChainMetricsInterval
	}
	if c.ChainStallSamples <= 0 {
		c.ChainStallSamples = DefaultChainStallSamples
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Runtime == nil {
		c.Runtime = NewProcessRuntime(ProcessConfig{Dir: c.ChainDir, Logger: c.Logger})
	}
	return c
}

func (c AgentConfig) validate() error {
	if c.GatewayAddr == "" || c.NodeID == "" || c.DataDir == "" {
		return errors.New("agent: the gateway address, node id and data dir are required")
	}
	return nil
}

// opsAgent is one running agent.
type opsAgent struct {
	cfg      AgentConfig
	gw       *gatewayConn
	state    *runtimeState
	epochs   *signingEpochs
	chain    *chainWatch
	seen     *seenCommands
	outcomes *seenCommands // taken, and their outcome recorded
	outbox   *outbox
	queue    chan *agentv1.Command
	mu       sync.Mutex
	running  []string        // acknowledged, result not yet delivered
	reacked  map[string]bool // seen ids acknowledged again this run
	ranHere  map[string]bool // ids this process took to run
	// finished is signalled when a command finishes, to heartbeat soon.
	finished chan struct{}
}

// RunAgent enrols if needed, then heartbeats, runs commands and reports
// on them until ctx ends (returning nil) or enrolment is refused.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	for _, dir := range []string{cfg.DataDir, cfg.ChainDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	creds, err := ensureEnrolled(ctx, cfg)
	if err != nil || creds == nil {
		return err
	}
	a, err := newOpsAgent(cfg)
	if err != nil {
		return err
	}
	if a.gw, err = dialGateway(cfg, creds); err != nil {
		return err
	}
	defer a.gw.close()
	a.resumeRuntime(ctx)
	a.run(ctx)
	return closeRuntime(cfg.Runtime)
}

// closeRuntime stops a runtime whose chain lives only as long as the agent
// (the process runtime); systemd units and containers keep running.
func closeRuntime(rt Runtime) error {
	c, ok := rt.(interface{ Close(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		return fmt.Errorf("agent: stop runtime: %w", err)
	}
	return nil
}

// ensureEnrolled loads the credentials, enrolling first when there are
// none; it retries with backoff until enrolled, refused or ctx ends.
func ensureEnrolled(ctx context.Context, cfg AgentConfig) (*agentCredentials, error) {
	creds, err := loadCredentials(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if creds != nil {
		if id, _ := agentv1.NodeIDFromCert(creds.cert.Leaf); id != cfg.NodeID {
			return nil, fmt.Errorf("agent: the data dir holds the certificate of node %q, not %q", id, cfg.NodeID)
		}
		return creds, nil
	}
	for failures := 0; ; failures++ {
		creds, err = enroll(ctx, cfg)
		if err == nil {
			cfg.Logger.Info("agent enrolled", "node_id", cfg.NodeID)
			return creds, nil
		}
		if errors.Is(err, errEnrollRejected) || cfg.EnrollmentToken == "" || cfg.CAFile == "" {
			return nil, fmt.Errorf("agent: %w", err)
		}
		cfg.Logger.Warn("enrolment failed, retrying", "err", err)
		if !sleep(ctx, BackoffDelay(cfg.MinBackoff, cfg.MaxBackoff, failures)) {
			return nil, nil
		}
	}
}

func newOpsAgent(cfg AgentConfig) (*opsAgent, error) {
	seen, err := loadSeenCommands(filepath.Join(cfg.DataDir, seenFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ob, err := loadOutbox(filepath.Join(cfg.DataDir, outboxFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	state, err := loadRuntimeState(filepath.Join(cfg.DataDir, runtimeStateFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	epochs, err := loadSigningEpochs(filepath.Join(cfg.DataDir, signingEpochsFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	chain := newChainWatch(cfg.ChainDir, cfg.ChainMetricsInterval, cfg.ChainStallSamples, state.configuration)
	outcomes, err := loadSeenCommands(filepath.Join(cfg.DataDir, finishedFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &opsAgent{cfg: cfg, seen: seen, outcomes: outcomes, outbox: ob, state: state, epochs: epochs, chain: chain, queue: make(chan *agentv1.Command, 1024), reacked: map[string]bool{}, ranHere: map[string]bool{}, finished: make(chan struct{}, 1)}, nil
}

// run heartbeats in this goroutine while commands run, events are sent
// and the chain's metrics scraped in others, so neither a long command nor
// a slow metrics endpoint delays a heartbeat.
func (a *opsAgent) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { a.executeCommands(ctx) })
	wg.Go(func() { a.sendEvents(ctx) })
	wg.Go(func() { a.renewCertificates(ctx) })
	wg.Go(func() { a.chain.watch(ctx) })
	a.heartbeatLoop(ctx)
	wg.Wait()
}

func (a *opsAgent) heartbeatLoop(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval
	if interval <= 0 {
		interval = agentv1.DefaultHeartbeatInterval
	}
	followUp := len(followUps) // none until a command finishes
	for failures := 0; ; {
		resp, err := a.heartbeat(ctx)
		switch {
		case err == nil:
			failures = 0
			a.take(resp.GetCommands())
			if next := resp.GetNextHeartbeatInterval().AsDuration(); a.cfg.HeartbeatInterval <= 0 && next > 0 {
				interval = next
			}
		case ctx.Err() != nil:
			return
		default:
			a.cfg.Logger.Warn("heartbeat failed", "code", status.Code(err).String())
			a.fenceIfDisowned(ctx, err)
			failures++
		}
		wait := interval
		switch {
		case err != nil:
			wait = min(interval, BackoffDelay(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures-1))
		case followUp < len(followUps) && !a.cfg.IntervalOnly:
			wait = min(interval, followUps[followUp])
			followUp++
		}
		switch a.awaitBeat(ctx, Jitter(wait, 0.1)) {
		case beatCancelled:
			return
		case beatAfterCommand:
			followUp = 0
		}
	}
}

// followUps are the waits before the heartbeats that follow a finished
// command. The control plane queues a workflow's next command moments
// after the last one finished, and commands travel in heartbeat answers:
// at the normal interval (30 s on a cloud host) a provision's three
// commands would wait a minute and a half for heartbeats alone.
var followUps = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

type beatReason int

const (
	beatDue beatReason = iota
	beatAfterCommand
	beatCancelled
)

// awaitBeat waits d, or less when a command finishes first (unless
// IntervalOnly).
func (a *opsAgent) awaitBeat(ctx context.Context, d time.Duration) beatReason {
	t := time.NewTimer(d)
	defer t.Stop()
	finished := a.finished
	if a.cfg.IntervalOnly {
		finished = nil // never ready
	}
	select {
	case <-ctx.Done():
		return beatCancelled
	case <-finished:
		return beatAfterCommand
	case <-t.C:
		return beatDue
	}
}

func (a *opsAgent) heartbeat(ctx context.Context) (*agentv1.HeartbeatResponse, error) {
	st, err := a.cfg.Runtime.Status(ctx)
	if err != nil {
		st = RuntimeStatus{Configured: true, Message: err.Error()}
	}
	chain := a.chain.latest()
	health, message := chain.verdict(st)
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return a.gw.rpc().Heartbeat(cctx, &agentv1.HeartbeatRequest{
		NodeId: a.cfg.NodeID, AgentVersion: a.cfg.Version, RunningCommandIds: a.runningIDs(),
		AppHealth: health, AppHealthMessage: message, Sync: chain.sync, Metrics: chain.metrics,
		Components: st.Components,
	})
}

// take acknowledges and queues the commands the agent has not seen. The
// ack is in the outbox before the id is marked seen, so a crash between
// the two makes the command come back rather than vanish.
func (a *opsAgent) take(cmds []*agentv1.Command) {
	for _, c := range cmds {
		if a.seen.has(c.GetId()) {
			if a.tookHere(c.GetId()) || a.outcomes.has(c.GetId()) || a.outbox.hasOutcome(c.GetId()) {
				a.reacknowledge(c.GetId())
			} else {
				a.resume(c)
			}
			continue
		}
		if err := a.outbox.add(event{Kind: "acknowledged", CommandID: c.GetId()}); err != nil {
			a.cfg.Logger.Error("cannot record acknowledgement", "command_id", c.GetId(), "err", err)
			continue
		}
		if isNew, err := a.seen.add(c.GetId()); err != nil || !isNew {
			if err != nil {
				a.cfg.Logger.Error("cannot record command", "command_id", c.GetId(), "err", err)
			}
			continue
		}
		a.runHere(c)
	}
}

// runHere queues c to run in this process.
func (a *opsAgent) runHere(c *agentv1.Command) {
	a.mu.Lock()
	a.ranHere[c.GetId()] = true
	a.mu.Unlock()
	a.setRunning(c.GetId(), true)
	a.queue <- c
}

func (a *opsAgent) tookHere(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ranHere[id]
}

// resume handles a command an earlier agent process took and did not
// finish (it was stopped or crashed meanwhile): the gateway still sends it
// and no outcome waits to be reported. A command safe to run twice runs
// again; any other fails, retryably, so the control plane decides.
func (a *opsAgent) resume(c *agentv1.Command) {
	id := c.GetId()
	if err := a.outbox.add(event{Kind: "acknowledged", CommandID: id}); err != nil {
		a.cfg.Logger.Error("cannot record acknowledgement", "command_id", id, "err", err)
		return
	}
	if rerunnable[c.GetType()] {
		a.cfg.Logger.Info("command interrupted by an agent restart; running it again", "command_id", id, "type", c.GetType().String())
		a.runHere(c)
		return
	}
	a.mu.Lock()
	a.ranHere[id] = true
	a.mu.Unlock()
	a.cfg.Logger.Warn("command interrupted by an agent restart; reported failed", "command_id", id, "type", c.GetType().String())
	a.recordOutcome(event{Kind: "failed", CommandID: id, Error: "interrupted by an agent restart before it finished", Retryable: true})
}

// recordOutcome puts a command's outcome in the outbox, then marks the
// command finished: a restart between the two finds the outcome there.
func (a *opsAgent) recordOutcome(e event) {
	if err := a.outbox.add(e); err != nil {
		a.cfg.Logger.Error("cannot record command outcome", "command_id", e.CommandID, "err", err)
		return
	}
	if _, err := a.outcomes.add(e.CommandID); err != nil {
		a.cfg.Logger.Error("cannot record command finished", "command_id", e.CommandID, "err", err)
	}
}

// rerunnable are the commands that come to the same end when run twice:
// keys and configuration are written whole, init steps run once, START and
// STOP reach a state. An UPGRADE or a snapshot transfer half done is not
// simply done again.
var rerunnable = map[agentv1.CommandType]bool{
	agentv1.CommandType_COMMAND_TYPE_DELIVER_KEYS: true,
	agentv1.CommandType_COMMAND_TYPE_CAPTURE_KEY:  true,
	agentv1.CommandType_COMMAND_TYPE_CONFIGURE:    true,
	agentv1.CommandType_COMMAND_TYPE_START:        true,
	agentv1.CommandType_COMMAND_TYPE_STOP:         true,
}

// reacknowledge answers a seen command that came back (its ack was lost,
// or the queue was rebuilt) with another ack, once per run, so it leaves
// the queue; it is never run again.
func (a *opsAgent) reacknowledge(id string) {
	a.mu.Lock()
	again := !a.reacked[id]
	a.reacked[id] = true
	a.mu.Unlock()
	if !again {
		return
	}
	a.cfg.Logger.Info("command already taken, not run again", "command_id", id)
	if err := a.outbox.add(event{Kind: "acknowledged", CommandID: id}); err != nil {
		a.cfg.Logger.Error("cannot record acknowledgement", "command_id", id, "err", err)
	}
}

func (a *opsAgent) runningIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.running...)
}

func (a *opsAgent) setRunning(id string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.running {
		if r == id {
			if !on {
				a.running = append(a.running[:i:i], a.running[i+1:]...)
			}
			return
		}
	}
	if on {
		a.running = append(a.running, id)
	}
}

// sendEvents delivers the outbox in order, retrying with backoff.
func (a *opsAgent) sendEvents(ctx context.Context) {
	for failures := 0; ; {
		e, ok := a.outbox.peek()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.outbox.notify:
				continue
			}
		}
		err := a.report(ctx, e)
		if err != nil && !permanentRPCError(err) {
			if ctx.Err() != nil {
				return
			}
			a.cfg.Logger.Warn("event not delivered, retrying", "command_id", e.CommandID, "code", status.Code(err).String())
			if !sleep(ctx, BackoffDelay(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures)) {
				return
			}
			failures++
			continue
		}
		if err != nil {
			a.cfg.Logger.Error("event refused, dropped", "command_id", e.CommandID, "code", status.Code(err).String())
		}
		failures = 0
		if e.Kind != "acknowledged" {
			a.setRunning(e.CommandID, false)
		}
		if err := a.outbox.done(e.Seq); err != nil {
			a.cfg.Logger.Error("cannot update outbox", "err", err)
		}
	}
}

// permanentRPCError is a refusal that resending cannot change.
func permanentRPCError(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument:
		return true
	}
	return false
}

func (a *opsAgent) report(ctx context.Context, e event) error {
	req := &agentv1.ReportEventRequest{NodeId: a.cfg.NodeID}
	switch e.Kind {
	case "acknowledged":
		req.Event = &agentv1.ReportEventRequest_Acknowledged{Acknowledged: &agentv1.CommandAcknowledged{CommandId: e.CommandID}}
	case "completed":
		req.Event = &agentv1.ReportEventRequest_Completed{Completed: &agentv1.CommandCompleted{CommandId: e.CommandID, Result: e.Result}}
	default:
		req.Event = &agentv1.ReportEventRequest_Failed{Failed: &agentv1.CommandFailed{CommandId: e.CommandID, Error: e.Error, Retryable: e.Retryable, Details: e.Result}}
	}
	return a.send(ctx, req)
}

func (a *opsAgent) send(ctx context.Context, req *agentv1.ReportEventRequest) error {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	_, err := a.gw.rpc().ReportEvent(cctx, req)
	return err
}

// BackoffDelay doubles from lo per failure up to hi, with ±20% jitter so
// agents cut off together do not reconnect together.
func BackoffDelay(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	return Jitter(min(d, hi), 0.2)
}

// Jitter spreads d uniformly over ±frac.
func Jitter(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 + frac*(2*rand.Float64()-1)))
}

// sleep waits d or until ctx ends, reporting whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
