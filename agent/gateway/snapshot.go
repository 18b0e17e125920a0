package gateway

import (
	"context"
	"errors"
	"io"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// snapshotChunkSize is the most archive data one GetSnapshot chunk holds.
const snapshotChunkSize = 1 << 20

// Snapshots stream through: the gateway holds one chunk of an archive at a
// time, never the whole. authorizeStream has checked that the certificate
// is the node's and that every message names that node.

// PutSnapshot implements AgentService: it stores the archive a running
// SNAPSHOT command of the node streams, kept only when the stream ends
// whole while the command is still unfinished.
func (s *service) PutSnapshot(stream agentv1.AgentService_PutSnapshotServer) error {
	if s.cfg.Snapshots == nil {
		return toStatus(engine.Errorf(engine.EUnsupported, "this gateway stores no snapshots"))
	}
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return toStatus(engine.Errorf(engine.EInvalid, "the snapshot stream holds no chunk"))
	}
	if err != nil {
		return err
	}
	if err := s.snapshotCommand(ctx, first, engine.CommandSnapshot); err != nil {
		return toStatus(err)
	}
	size, err := s.storeSnapshot(ctx, stream, first)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("snapshot stored", "node_id", first.GetNodeId(), "command_id", first.GetCommandId(),
		"snapshot_id", first.GetSnapshotId(), "bytes", size)
	return stream.SendAndClose(&agentv1.PutSnapshotResponse{Size: uint64(size)})
}

// storeSnapshot writes the stream from its first chunk on and commits it
// once it ended cleanly; any error leaves nothing stored.
func (s *service) storeSnapshot(ctx context.Context, stream agentv1.AgentService_PutSnapshotServer, first *agentv1.SnapshotChunk) (int64, error) {
	w, err := s.cfg.Snapshots.Create(ctx, first.GetNodeId(), first.GetSnapshotId())
	if err != nil {
		return 0, s.snapshotStoreError("create", first, err)
	}
	defer w.Abort()
	if err := s.receiveChunks(stream, first, w); err != nil {
		return 0, err
	}
	// A command cancelled or failed meanwhile gets no snapshot.
	if err := s.snapshotCommand(ctx, first, engine.CommandSnapshot); err != nil {
		return 0, toStatus(err)
	}
	size, err := w.Commit()
	if err != nil {
		return 0, s.snapshotStoreError("commit", first, err)
	}
	return size, nil
}

// receiveChunks copies first and the chunks that follow it to w until the
// stream ends; every chunk must name first's command and snapshot.
func (s *service) receiveChunks(stream agentv1.AgentService_PutSnapshotServer, first *agentv1.SnapshotChunk, w io.Writer) error {
	for c := first; ; {
		if c.GetCommandId() != first.GetCommandId() || c.GetSnapshotId() != first.GetSnapshotId() {
			return toStatus(engine.Errorf(engine.EInvalid, "a chunk names another command or snapshot than the stream's first"))
		}
		if _, err := w.Write(c.GetData()); err != nil {
			return s.snapshotStoreError("write", first, err)
		}
		next, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c = next
	}
}

// GetSnapshot implements AgentService: it streams the snapshot a running
// RESTORE_SNAPSHOT command of the node names, in chunks of at most
// snapshotChunkSize.
func (s *service) GetSnapshot(req *agentv1.GetSnapshotRequest, stream agentv1.AgentService_GetSnapshotServer) error {
	if s.cfg.Snapshots == nil {
		return toStatus(engine.Errorf(engine.EUnsupported, "this gateway stores no snapshots"))
	}
	ctx := stream.Context()
	named := &agentv1.SnapshotChunk{NodeId: req.GetNodeId(), CommandId: req.GetCommandId(), SnapshotId: req.GetSnapshotId()}
	if err := s.snapshotCommand(ctx, named, engine.CommandRestoreSnapshot); err != nil {
		return toStatus(err)
	}
	r, _, err := s.cfg.Snapshots.Open(ctx, req.GetNodeId(), req.GetSnapshotId())
	if err != nil {
		return s.snapshotStoreError("open", named, err)
	}
	defer r.Close()
	for {
		// A fresh buffer each time: gRPC may still hold the message sent.
		buf := make([]byte, snapshotChunkSize)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if serr := stream.Send(&agentv1.SnapshotChunk{NodeId: named.NodeId, CommandId: named.CommandId, SnapshotId: named.SnapshotId, Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return s.snapshotStoreError("read", named, err)
		}
	}
}

// snapshotCommand checks that c's command is an unfinished command of
// type want of c's node whose payload names c's snapshot.
func (s *service) snapshotCommand(ctx context.Context, c *agentv1.SnapshotChunk, want engine.CommandType) error {
	cmd, err := s.nodeCommand(ctx, c.GetNodeId(), c.GetCommandId())
	if err != nil {
		return err
	}
	if cmd.Type != want || cmd.Status.Finished() {
		return engine.Errorf(engine.EForbidden, "command %s is not a running %s", cmd.ID, agentv1.CommandType(want))
	}
	named, err := payloadSnapshotID(cmd)
	if err != nil || named == "" || named != c.GetSnapshotId() {
		return engine.Errorf(engine.EForbidden, "command %s is not for snapshot %q", cmd.ID, agentv1.StatusText(c.GetSnapshotId()))
	}
	return nil
}

// payloadSnapshotID is the snapshot a SNAPSHOT or RESTORE_SNAPSHOT names.
func payloadSnapshotID(cmd *engine.Command) (string, error) {
	if cmd.Type == engine.CommandSnapshot {
		var p agentv1.SnapshotPayload
		err := agentv1.UnmarshalPayload(cmd.Payload, &p)
		return p.GetSnapshotId(), err
	}
	var p agentv1.RestoreSnapshotPayload
	err := agentv1.UnmarshalPayload(cmd.Payload, &p)
	return p.GetSnapshotId(), err
}

// snapshotStoreError logs a store failure the agent cannot fix and maps
// it; not found and invalid ids are the agent's to hear.
func (s *service) snapshotStoreError(op string, c *agentv1.SnapshotChunk, err error) error {
	if code := engine.ErrorCode(err); code != engine.ENotFound && code != engine.EInvalid {
		s.cfg.Logger.Error("snapshot store: "+op, "node_id", c.GetNodeId(), "snapshot_id", c.GetSnapshotId(), "err", err)
		err = engine.Errorf(engine.EUnavailable, "the snapshot store cannot %s the snapshot", op)
	}
	return toStatus(err)
}
