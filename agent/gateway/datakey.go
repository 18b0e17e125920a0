package gateway

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// DataKeys unwraps a node's data key (DEK). The caller zeroes it.
type DataKeys func(ctx context.Context, nodeID string) ([]byte, error)

// FetchDataKey implements AgentService: the node's DEK, only for a
// CAPTURE_KEY or DELIVER_KEYS command of that node the agent is running.
// authorize has checked that the certificate is the node's.
func (s *service) FetchDataKey(ctx context.Context, req *agentv1.FetchDataKeyRequest) (*agentv1.FetchDataKeyResponse, error) {
	if s.cfg.DataKeys == nil {
		return nil, toStatus(engine.Errorf(engine.EUnsupported, "this gateway hands out no data keys"))
	}
	c, err := s.nodeCommand(ctx, req.GetNodeId(), req.GetCommandId())
	if err != nil {
		return nil, toStatus(err)
	}
	if !needsDataKey(c.Type) || c.Status.Finished() {
		return nil, toStatus(engine.Errorf(engine.EForbidden, "command %s is not a running CAPTURE_KEY or DELIVER_KEYS", c.ID))
	}
	dek, err := s.cfg.DataKeys(ctx, c.NodeID)
	if err != nil {
		return nil, toStatus(err)
	}
	// The response's copy is gRPC's to encode; this one is zeroed at once.
	resp := &agentv1.FetchDataKeyResponse{DataKey: append([]byte(nil), dek...)}
	engine.Zero(dek)
	return resp, nil
}

// needsDataKey: the commands whose key material crosses the wire sealed
// under the node's data key.
func needsDataKey(t engine.CommandType) bool {
	return t == engine.CommandCaptureKey || t == engine.CommandDeliverKeys
}
