// Package workflows holds the long-running processes of the control plane
// (provision, terminate, migrate) as Temporal workflows, and the activities
// they run. Workflows are small and deterministic: every read and write of
// the outside world is an activity. Activities run at least once (a worker
// may crash after doing the work and before reporting it), so each one is
// idempotent: it looks for what an earlier attempt did before doing it.
package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"go.temporal.io/sdk/temporal"
)

// Enroller issues and revokes agent identities; gateway.Identity is one.
type Enroller interface {
	// IssueEnrollmentToken returns a one-time token for the agent of
	// nodeID's host incarnation (engine.HostSpec.Incarnation).
	IssueEnrollmentToken(ctx context.Context, nodeID, incarnation string, ttl time.Duration) (string, error)
	// Revoke ends the node's agent registration; ENotFound if it has none.
	Revoke(ctx context.Context, nodeID string) error
}

// ChainLookup returns the chain profile with id or ENotFound
// (profile.Catalog.Get).
type ChainLookup func(id string) (*profile.ChainProfile, error)

// Timing tunes the waiting activities; zero fields take the defaults.
type Timing struct {
	Poll           time.Duration // between reads of the store; default 2s
	AgentReady     time.Duration // WaitForAgentReady gives up after; default 5m
	EnrollmentTTL  time.Duration // of the token a new host enrols with; default 1h
	Ack            time.Duration // a command must be acknowledged within; default 2m
	LivenessGrace  time.Duration // a running command may go without fresh progress for; default 5m
	StallThreshold int           // stalled progress readings in a row that fail a command; default 20
	StopWait       time.Duration // terminate waits this long for STOP; default 2m
	CaptureWait    time.Duration // a CAPTURE_KEY must finish within; default 5m
}

func (t Timing) withDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Poll, 2*time.Second)
	def(&t.AgentReady, 5*time.Minute)
	def(&t.EnrollmentTTL, time.Hour)
	def(&t.Ack, 2*time.Minute)
	def(&t.LivenessGrace, 5*time.Minute)
	def(&t.StopWait, 2*time.Minute)
	def(&t.CaptureWait, 5*time.Minute)
	if t.StallThreshold <= 0 {
		t.StallThreshold = 20
	}
	return t
}

// Activities are the steps of the workflows, as methods on the engine's
// ports. Register a *Activities on the worker; workflows call the methods
// by name.
type Activities struct {
	// Simulation, when set, configures simulated chain nodes instead of
	// the chain profile's binaries (the local provisioner).
	Simulation *Simulation
	Store      engine.Store
	Cache      engine.Cache
	// Statuses holds what agents said in their latest heartbeats; nil
	// leaves WaitForCommandCompletion without the running-ids check.
	Statuses    engine.AgentStatusCache
	Events      engine.Events
	Secrets     engine.Secrets
	Provisioner engine.Provisioner
	Enroller    Enroller
	Chains      ChainLookup
	// OpenSealed opens a sealed box addressed to the appliance's X25519 key
	// (user-provided secrets). The plaintext is the caller's to zero.
	OpenSealed func(sealed []byte) ([]byte, error)
	// Bootstrap is what every new host gets, without the enrollment token:
	// ProvisionHost fills a fresh one in, so it never enters a workflow
	// history.
	Bootstrap engine.HostBootstrap
	// CACertPEM, when set, gives the agent CA certificates a new host is to
	// trust, read as each host is created (they change when the CA is
	// rotated); it replaces Bootstrap.CACertPEM.
	CACertPEM func() []byte
	// Snapshots holds the chain data snapshots migrations carry; nil
	// keeps them (nothing to delete).
	Snapshots engine.SnapshotStore
	Now       func() time.Time // default time.Now
	Timing    Timing
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Activities) timing() Timing { return a.Timing.withDefaults() }

// permanentCodes are the domain errors a retry cannot fix.
var permanentCodes = map[engine.Code]bool{
	engine.EInvalid: true, engine.ENotFound: true, engine.EUnsupported: true,
	engine.EForbidden: true, engine.ETooLarge: true,
}

// classify turns a domain error a retry cannot fix into a non-retryable
// application error whose type is the domain code; other errors are
// returned as they are and retried by the activity's policy.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return err
	}
	var de *engine.Error
	if errors.As(err, &de) && permanentCodes[de.Code] {
		return temporal.NewNonRetryableApplicationError(err.Error(), string(de.Code), nil)
	}
	return err
}

// permanent builds a non-retryable error of code.
func permanent(code engine.Code, format string, args ...any) error {
	return classify(engine.Errorf(code, format, args...))
}
