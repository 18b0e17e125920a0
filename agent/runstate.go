package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// runtimeStateFile keeps what the runtime was told, so an agent that
// restarts (the host rebooted, the appliance re-adopted a local host, the
// agent crashed) can run the chain without a new CONFIGURE.
const runtimeStateFile = "runtime-state.json"

// savedRuntime is the file's content: the configuration last applied
// (files, genesis and snapshot left out: they are on disk already) and
// whether the chain should run. Running follows the last START, RESTART or STOP that
// succeeded; a STOP counts as soon as it begins, so a chain being stopped
// is never brought back by a restart. Leases are the signing leases (epoch
// by key name) the chain last started under: an agent that restarts
// resumes signing under them alone, and a STOP drops them, as the control
// plane may release a lease once the signer stopped.
type savedRuntime struct {
	Configuration json.RawMessage   `json:"configuration,omitempty"` // a ConfigurePayload
	Running       bool              `json:"running"`
	Leases        map[string]uint64 `json:"leases,omitempty"`
}

// runtimeState is the saved runtime of one agent's data dir.
type runtimeState struct {
	mu   sync.Mutex
	path string
	cur  savedRuntime
}

func loadRuntimeState(path string) (*runtimeState, error) {
	s := &runtimeState{path: path}
	if err := readJSON(path, &s.cur); err != nil {
		return nil, fmt.Errorf("read runtime state: %w", err)
	}
	return s, nil
}

// configuration returns the saved configuration, nil when there is none.
func (s *runtimeState) configuration() (*agentv1.ConfigurePayload, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur.Configuration) == 0 {
		return nil, false, nil
	}
	var p agentv1.ConfigurePayload
	if err := agentv1.UnmarshalPayload(s.cur.Configuration, &p); err != nil {
		return nil, false, fmt.Errorf("saved configuration: %w", err)
	}
	return &p, s.cur.Running, nil
}

// configured saves p as the applied configuration.
func (s *runtimeState) configured(p *agentv1.ConfigurePayload) error {
	kept := proto.CloneOf(p)
	kept.Files, kept.Snapshot, kept.Genesis = nil, nil, nil
	b, err := agentv1.MarshalPayload(kept)
	if err != nil {
		return err
	}
	return s.save(func(r *savedRuntime) { r.Configuration = b })
}

// upgraded saves the configuration with the component p upgraded.
func (s *runtimeState) upgraded(p *agentv1.UpgradePayload) error {
	cfg, _, err := s.configuration()
	if err != nil || cfg == nil {
		return err
	}
	i := findComponent(cfg.GetComponents(), p.GetComponent())
	if i < 0 {
		return nil
	}
	next, err := upgradedComponent(cfg.Components[i], p)
	if err != nil || next == nil { // nil: at that version already
		return err
	}
	cfg.Components[i] = next
	return s.configured(cfg)
}

// started saves that the chain runs under leases.
func (s *runtimeState) started(leases map[string]uint64) error {
	return s.save(func(r *savedRuntime) { r.Running, r.Leases = true, leases })
}

// stopped saves that the chain must not run, nor sign again without a
// new START.
func (s *runtimeState) stopped() error {
	return s.save(func(r *savedRuntime) { r.Running, r.Leases = false, nil })
}

// leases returns the leases the chain last started under.
func (s *runtimeState) leases() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.cur.Leases)
}

func (s *runtimeState) save(change func(*savedRuntime)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cur
	change(&next)
	if err := writeJSON(s.path, next); err != nil {
		return fmt.Errorf("save runtime state: %w", err)
	}
	s.cur = next
	return nil
}

// resumeRuntime gives the runtime back the configuration it had before the
// agent restarted, and starts the chain if it was meant to run and does not,
// under the signing leases it last started under. Failures are logged: the control plane's next command can repair them.
func (a *opsAgent) resumeRuntime(ctx context.Context) {
	p, running, err := a.state.configuration()
	if err != nil || p == nil {
		if err != nil {
			a.cfg.Logger.Error("cannot resume the runtime", "err", err)
		}
		return
	}
	if err := a.cfg.Runtime.Restore(p); err != nil {
		a.cfg.Logger.Error("cannot restore the saved configuration", "err", err)
		return
	}
	st, err := a.cfg.Runtime.Status(ctx)
	alive := err == nil && st.Running
	if !running {
		if alive && len(signingKeys(p)) > 0 {
			// Started by the host (a boot), not by the control plane,
			// which stopped it: a signer runs only when told.
			a.stopSigner(ctx, "the chain signs and was stopped, yet runs")
		}
		a.cfg.Logger.Info("runtime configuration restored", "chain_profile_id", p.GetChainProfileId())
		return
	}
	if alive {
		if err := a.epochs.check(signingKeys(p), a.state.leases()); err != nil {
			a.stopSigner(ctx, "the chain runs without a current lease: "+err.Error())
			return
		}
		a.cfg.Logger.Info("runtime configuration restored; the chain is running", "chain_profile_id", p.GetChainProfileId())
		return
	}
	if err := a.epochs.check(signingKeys(p), a.state.leases()); err != nil {
		a.cfg.Logger.Error("the chain is not started again: it signs, and not under a current lease", "err", err)
		return
	}
	if err := a.cfg.Runtime.Start(ctx); err != nil {
		a.cfg.Logger.Error("cannot restart the chain", "err", err)
		return
	}
	a.cfg.Logger.Info("runtime configuration restored; the chain started again", "chain_profile_id", p.GetChainProfileId())
}

// stopSigner stops a chain that signs where it must not (why says how),
// and records it stopped: only a START under a current lease runs it
// again.
func (a *opsAgent) stopSigner(ctx context.Context, why string) {
	a.cfg.Logger.Warn("stopping the chain: it must not sign here", "why", why)
	if err := a.state.stopped(); err != nil {
		a.cfg.Logger.Error("cannot record the chain stopped", "err", err)
	}
	if err := a.cfg.Runtime.Stop(ctx); err != nil {
		a.cfg.Logger.Error("cannot stop the chain", "err", err)
	}
}

// fenceIfDisowned stops a signing chain once the gateway refuses this
// agent's certificate (the node enrolled on another host, or was revoked):
// another host may hold its key now, and this one cannot hear a STOP.
func (a *opsAgent) fenceIfDisowned(ctx context.Context, err error) {
	if status.Code(err) != codes.PermissionDenied {
		return
	}
	p, running, cerr := a.state.configuration()
	if cerr != nil || p == nil || !running || len(signingKeys(p)) == 0 {
		return
	}
	a.stopSigner(ctx, "the gateway refuses this agent: "+status.Convert(err).Message())
}
