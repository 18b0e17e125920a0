package engine

import (
	"context"
	"errors"
	"fmt"
)

// Reaped is a host ReapHosts destroyed, or would destroy in a dry run.
type Reaped struct {
	Host   ManagedHost
	Reason string // why no node needs it, e.g. "node node_1 is terminated"
}

// ReapHosts destroys the hosts that no node needs any more: those whose
// node id label names no node, or a node that is terminated or failed (a
// failed node's host is left over from a compensation that did not finish;
// a new attempt moves the node to provisioning first). With dryRun it
// destroys nothing and returns what it would reap. A host whose node cannot
// be read, or that fails to be destroyed, is skipped: the others are still
// reaped and the errors are returned joined, with everything reaped so far.
func ReapHosts(ctx context.Context, prov Provisioner, nodes NodeStore, dryRun bool) ([]Reaped, error) {
	hosts, err := prov.ListHosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	var reaped []Reaped
	var errs []error
	for _, h := range hosts {
		reason, err := reapReason(ctx, nodes, h)
		if err == nil && reason != "" && !dryRun {
			err = prov.DestroyHost(ctx, h.Host)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("reap host %s: %w", h.Host.ProviderID, err))
		case reason != "":
			reaped = append(reaped, Reaped{Host: h, Reason: reason})
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	return reaped, errors.Join(errs...)
}

// reapReason says why h is no longer needed, or "" if its node still needs it.
func reapReason(ctx context.Context, nodes NodeStore, h ManagedHost) (string, error) {
	if h.NodeID == "" {
		return "host has no " + LabelNodeID + " label", nil
	}
	n, err := nodes.GetNode(ctx, h.NodeID)
	switch {
	case IsCode(err, ENotFound):
		return "node " + h.NodeID + " does not exist", nil
	case err != nil:
		return "", fmt.Errorf("read node %s: %w", h.NodeID, err)
	case n.State == NodeTerminated || n.State == NodeFailed:
		return "node " + h.NodeID + " is " + string(n.State), nil
	}
	return "", nil
}
