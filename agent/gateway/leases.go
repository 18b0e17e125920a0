package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// LeaseReader reads the signing leases; engine.LeaseStore is one.
type LeaseReader interface {
	// GetSigningLease returns ENotFound if the key was never leased.
	GetSigningLease(ctx context.Context, nodeID, keyName string) (*engine.SigningLease, error)
}

// startVerdict is what becomes of a queued START.
type startVerdict int

const (
	deliverStart startVerdict = iota
	holdStart                 // not for this agent: leave it queued for the node's registered one
	refuseStart               // fail it: its leases are not this host's
)

// checkStart decides whether a START may reach the agent heartbeating with
// the certificate of serial. A START bearing signing leases goes only to
// their holder at their epochs: the host the registration names, read
// afresh since a new host's enrolment replaces it. Any other START goes as
// it is. why explains a refusal; err is a failed read.
func (s *service) checkStart(ctx context.Context, nodeID, serial string, c *engine.Command) (v startVerdict, why string, err error) {
	if c.Type != engine.CommandStart {
		return deliverStart, "", nil
	}
	var p agentv1.StartPayload
	if err := agentv1.UnmarshalPayload(c.Payload, &p); err != nil {
		return refuseStart, "the START payload does not decode", nil
	}
	if len(p.GetLeases()) == 0 {
		return deliverStart, "", nil
	}
	if s.cfg.Leases == nil {
		return refuseStart, "this gateway cannot check signing leases", nil
	}
	reg, err := s.registration(ctx, nodeID, true)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return holdStart, "", nil
	case err != nil:
		return 0, "", err
	case !reg.Accepts(serial):
		return holdStart, "", nil // a superseded agent the registration cache still let in
	}
	for _, l := range p.GetLeases() {
		why, err := s.leaseRefusal(ctx, nodeID, reg.Incarnation, l)
		if err != nil || why != "" {
			return refuseStart, why, err
		}
	}
	return deliverStart, "", nil
}

// leaseRefusal says why lease does not let the host incarnation of nodeID
// sign, or "" when it does.
func (s *service) leaseRefusal(ctx context.Context, nodeID, incarnation string, lease *agentv1.SigningLease) (string, error) {
	key := lease.GetKeyName()
	stored, err := s.cfg.Leases.GetSigningLease(ctx, nodeID, key)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return fmt.Sprintf("signing lease of key %s was never granted", key), nil
	case err != nil:
		return "", err
	case stored.Holder != engine.LeaseHolder{NodeID: nodeID, Incarnation: incarnation}:
		return fmt.Sprintf("signing lease of key %s is held by another host", key), nil
	case stored.Epoch != lease.GetEpoch():
		return fmt.Sprintf("signing lease of key %s: stale epoch %d, the lease is at epoch %d", key, lease.GetEpoch(), stored.Epoch), nil
	case !stored.Held():
		return fmt.Sprintf("signing lease of key %s was released", key), nil
	}
	return "", nil
}

// refuse fails a command the agent must not receive and takes it off the
// queue.
func (s *service) refuse(ctx context.Context, nodeID string, c *engine.Command, why string) error {
	s.cfg.Logger.Warn("command refused", "node_id", nodeID, "command_id", c.ID, "type", c.Type, "reason", why)
	err := s.updateCommand(ctx, nodeID, c.ID, func(c *engine.Command) bool {
		if c.Status.Finished() {
			return false
		}
		c.Status, c.Error, c.FinishedAt = engine.CommandFailed, why, time.Now().UTC().Truncate(time.Microsecond)
		return true
	})
	if err != nil {
		return err
	}
	return s.cfg.Cache.AckCommand(ctx, nodeID, c.ID)
}
