package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// commandError is a failure with whether running the command again may help.
type commandError struct {
	msg       string
	retryable bool
}

func (e *commandError) Error() string { return e.msg }

// permanent marks a failure that a retry cannot fix.
func permanent(msg string) error { return &commandError{msg: msg} }

// executeCommands runs the queued commands one at a time, in the order they
// arrived: CONFIGURE must finish before START begins.
func (a *opsAgent) executeCommands(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-a.queue:
			a.executeOne(ctx, c)
		}
	}
}

// executeOne runs c under a progress watch and puts its outcome in the
// outbox; a cancelled agent reports nothing, so nothing is claimed done.
func (a *opsAgent) executeOne(ctx context.Context, c *agentv1.Command) {
	a.cfg.Logger.Info("command started", "command_id", c.GetId(), "type", c.GetType().String())
	w := newProgressWatch()
	stop := a.watchProgress(ctx, c.GetId(), w)
	result, err := a.execute(ctx, c, w.report)
	stop()
	if ctx.Err() != nil {
		return
	}
	e := event{Kind: "completed", CommandID: c.GetId(), Result: result}
	if err != nil {
		var ce *commandError
		e = event{Kind: "failed", CommandID: c.GetId(), Error: err.Error(), Retryable: !errors.As(err, &ce) || ce.retryable, Result: result}
	}
	a.cfg.Logger.Info("command finished", "command_id", c.GetId(), "outcome", e.Kind)
	a.recordOutcome(e)
	select { // heartbeat soon: the next command is likely on its way
	case a.finished <- struct{}{}:
	default:
	}
}

// execute dispatches on the command type; only results travel, and a
// CAPTURE_KEY result is ciphertext. What changes the runtime is saved, so
// an agent that restarts resumes it (see runtimeState).
func (a *opsAgent) execute(ctx context.Context, c *agentv1.Command, progress ProgressFunc) ([]byte, error) {
	rt := a.cfg.Runtime
	switch c.GetType() {
	case agentv1.CommandType_COMMAND_TYPE_CONFIGURE:
		var p agentv1.ConfigurePayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return a.configure(ctx, &p, progress)
	case agentv1.CommandType_COMMAND_TYPE_START:
		leases, err := startLeases(c.GetPayload())
		if err != nil {
			return nil, err
		}
		return nil, a.startChain(ctx, leases, rt.Start)
	case agentv1.CommandType_COMMAND_TYPE_STOP:
		if err := a.state.stopped(); err != nil {
			return nil, err
		}
		return nil, rt.Stop(ctx)
	case agentv1.CommandType_COMMAND_TYPE_RESTART:
		leases, err := startLeases(c.GetPayload())
		if err != nil {
			return nil, err
		}
		if len(leases) == 0 { // the same holder restarts
			leases = a.state.leases()
		}
		return nil, a.startChain(ctx, leases, rt.Restart)
	case agentv1.CommandType_COMMAND_TYPE_CAPTURE_KEY:
		var p agentv1.CaptureKeyPayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return a.captureKey(ctx, c.GetId(), &p)
	case agentv1.CommandType_COMMAND_TYPE_DELIVER_KEYS:
		var p agentv1.DeliverKeysPayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return nil, a.deliverKeys(ctx, c.GetId(), &p)
	case agentv1.CommandType_COMMAND_TYPE_UPGRADE:
		var p agentv1.UpgradePayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return a.upgrade(ctx, &p, progress)
	case agentv1.CommandType_COMMAND_TYPE_SNAPSHOT:
		var p agentv1.SnapshotPayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return a.snapshot(ctx, c.GetId(), &p, progress)
	case agentv1.CommandType_COMMAND_TYPE_RESTORE_SNAPSHOT:
		var p agentv1.RestoreSnapshotPayload
		if err := agentv1.UnmarshalPayload(c.GetPayload(), &p); err != nil {
			return nil, permanent(err.Error())
		}
		return a.restoreSnapshot(ctx, c.GetId(), &p, progress)
	default:
		return nil, permanent("this agent does not support command type " + c.GetType().String())
	}
}

// configure runs CONFIGURE and saves the configuration, its metrics URLs
// rendered for the metrics watcher; the result is the ConfigureResult.
func (a *opsAgent) configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) ([]byte, error) {
	res, err := a.cfg.Runtime.Configure(ctx, p, progress)
	if err != nil {
		return nil, err
	}
	saved, err := RenderedMetrics(p, absDir(a.cfg.ChainDir), res.GetPorts())
	if err != nil {
		return nil, err
	}
	if err := a.state.configured(saved); err != nil {
		return nil, err
	}
	return agentv1.MarshalPayload(res)
}

// startChain runs start (Start or Restart) once leases cover every key
// the configuration signs with, their epochs recorded first, and saves
// that the chain runs under them. Nothing starts on a refusal.
func (a *opsAgent) startChain(ctx context.Context, leases map[string]uint64, start func(context.Context) error) error {
	cfg, _, err := a.state.configuration()
	if err != nil {
		return err
	}
	if err := a.epochs.admit(signingKeys(cfg), leases); err != nil {
		return err
	}
	if err := start(ctx); err != nil {
		return err
	}
	return a.state.started(leases)
}

// startLeases reads the StartPayload of a START or RESTART (empty: no
// leases). A RESTART without leases restarts under those of the chain's
// last start; after a STOP there are none, so a chain that signs needs a
// START with its leases again.
func startLeases(payload []byte) (map[string]uint64, error) {
	var p agentv1.StartPayload
	if err := agentv1.UnmarshalPayload(payload, &p); err != nil {
		return nil, permanent(err.Error())
	}
	return leaseEpochs(p.GetLeases())
}

// upgrade runs the runtime's upgrade, switching at the chain height the
// metrics give, and saves the upgraded component; the outcome is the
// result on success and the details of a failure.
func (a *opsAgent) upgrade(ctx context.Context, p *agentv1.UpgradePayload, progress ProgressFunc) ([]byte, error) {
	outcome, err := a.cfg.Runtime.Upgrade(ctx, p, a.chain.height, progress)
	var result []byte
	if outcome != nil {
		var merr error
		if result, merr = agentv1.MarshalPayload(outcome); merr != nil {
			return nil, merr
		}
	}
	if err != nil {
		return result, err
	}
	return result, a.state.upgraded(p)
}

// progressWatch holds a command's latest progress for the periodic check.
type progressWatch struct {
	mu  sync.Mutex
	cur Progress
}

func newProgressWatch() *progressWatch { return &progressWatch{} }

func (w *progressWatch) report(p Progress) {
	w.mu.Lock()
	w.cur = p
	w.mu.Unlock()
}

func (w *progressWatch) get() Progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// stallCounter counts consecutive checks without progress.
type stallCounter struct {
	last    Progress
	checks  int
	limit   int
	started bool
}

// check reports whether p means stalled: limit checks in a row with
// neither percent nor bytes moving.
func (s *stallCounter) check(p Progress) bool {
	moved := !s.started && (p.Percent > 0 || p.BytesDone > 0) ||
		s.started && (p.Percent != s.last.Percent || p.BytesDone != s.last.BytesDone)
	s.started, s.last = true, p
	if moved {
		s.checks = 0
	} else {
		s.checks++
	}
	return s.checks >= s.limit
}

// watchProgress reports the command's progress every check interval,
// marked stalled after StallChecks checks without any; stop ends it.
func (a *opsAgent) watchProgress(ctx context.Context, id string, w *progressWatch) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.cfg.ProgressCheckInterval)
		defer t.Stop()
		stall := stallCounter{limit: a.cfg.StallChecks}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p := w.get()
			stalled := stall.check(p)
			if stalled && stall.checks == stall.limit {
				a.cfg.Logger.Warn("command stalled", "command_id", id)
			}
			a.sendProgress(ctx, id, p, stalled)
		}
	}()
	return func() { cancel(); <-done }
}

// sendProgress is best effort: the next check sends a fresher one.
func (a *opsAgent) sendProgress(ctx context.Context, id string, p Progress, stalled bool) {
	err := a.send(ctx, &agentv1.ReportEventRequest{NodeId: a.cfg.NodeID, Event: &agentv1.ReportEventRequest_Progress{Progress: &agentv1.CommandProgress{
		CommandId: id, Percent: p.Percent, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Message: p.Message, Stalled: stalled,
	}}})
	if err != nil && ctx.Err() == nil {
		a.cfg.Logger.Debug("progress not delivered", "command_id", id)
	}
}
