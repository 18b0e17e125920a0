package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SNAPSHOT streams an archive of the stopped chain's data dir to the
// gateway (PutSnapshot) and RESTORE_SNAPSHOT brings one back on the node's
// next host (GetSnapshot); see snapshotarchive.go for the archive. A
// transfer cut by the appliance restarting is made again from the start.

const (
	// snapshotChunkSize is the most archive data one chunk carries.
	snapshotChunkSize = 1 << 20
	// snapshotAttempts is how many times a transfer is made while the
	// gateway is away, with backoff between them.
	snapshotAttempts = 6
)

// snapshotIdle is how long a transfer may move no chunk before it is
// given up and made again: a connection lost without a word would
// otherwise hold the command for ever.
var snapshotIdle = time.Minute

// snapshot runs SNAPSHOT command id.
func (a *opsAgent) snapshot(ctx context.Context, id string, p *agentv1.SnapshotPayload, progress ProgressFunc) ([]byte, error) {
	l, err := a.snapshotChecks(ctx, "snapshot", p.GetSnapshotId(), p.GetExclude())
	if err != nil {
		return nil, err
	}
	var res *agentv1.SnapshotResult
	err = a.transfer(ctx, "put the snapshot", id, func(ctx context.Context) error {
		var err error
		res, err = a.putSnapshot(ctx, id, p.GetSnapshotId(), l, progress)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.cfg.Logger.Info("snapshot made", "command_id", id, "snapshot_id", res.GetSnapshotId(), "files", res.GetFiles(), "bytes", res.GetBytes())
	return agentv1.MarshalPayload(res)
}

// restoreSnapshot runs RESTORE_SNAPSHOT command id.
func (a *opsAgent) restoreSnapshot(ctx context.Context, id string, p *agentv1.RestoreSnapshotPayload, progress ProgressFunc) ([]byte, error) {
	l, err := a.snapshotChecks(ctx, "restore", p.GetSnapshotId(), p.GetExclude())
	if err != nil {
		return nil, err
	}
	var res *agentv1.SnapshotResult
	err = a.transfer(ctx, "get the snapshot", id, func(ctx context.Context) error {
		var err error
		res, err = a.getSnapshot(ctx, id, p.GetSnapshotId(), l, progress)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.cfg.Logger.Info("snapshot restored", "command_id", id, "snapshot_id", res.GetSnapshotId(), "files", res.GetFiles(), "bytes", res.GetBytes())
	return agentv1.MarshalPayload(res)
}

// snapshotChecks refuses a bad payload, and a chain that runs: its data
// changes under a snapshot, and a restore would change it under the chain.
// It returns what the archive leaves out: the excluded paths and the key
// files of the saved configuration.
func (a *opsAgent) snapshotChecks(ctx context.Context, what, snapshotID string, exclude []string) (leftOut, error) {
	if !engine.ValidSnapshotName(snapshotID) {
		return nil, permanent(fmt.Sprintf("%s: the snapshot id %q is not valid", what, agentv1.StatusText(snapshotID)))
	}
	cfg, running, err := a.state.configuration()
	if err != nil {
		return nil, err
	}
	if running {
		return nil, permanent(what + ": the chain is meant to run; STOP it first")
	}
	if err := a.refuseRunningComponents(ctx, what); err != nil {
		return nil, err
	}
	return newLeftOut(exclude, cfg.GetKeyPaths())
}

func (a *opsAgent) refuseRunningComponents(ctx context.Context, what string) error {
	st, err := a.cfg.Runtime.Status(ctx)
	if err != nil {
		return fmt.Errorf("%s: runtime status: %w", what, err)
	}
	for _, c := range st.Components {
		if c.GetRunning() || c.GetCrashLoop() {
			return permanent(fmt.Sprintf("%s: component %s runs; STOP the chain first", what, c.GetName()))
		}
	}
	if st.Running {
		return permanent(what + ": the chain runs; STOP it first")
	}
	return nil
}

// transfer runs one, and runs it again from the start while the gateway
// is away (the appliance restarting), up to snapshotAttempts times.
func (a *opsAgent) transfer(ctx context.Context, what, id string, once func(context.Context) error) error {
	for failures := 1; ; failures++ {
		err := once(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !transferInterrupted(err) || failures >= snapshotAttempts:
			return transferError(what, err)
		}
		a.cfg.Logger.Warn("snapshot transfer interrupted, starting again", "command_id", id, "code", status.Code(err).String())
		if !sleep(ctx, BackoffDelay(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures-1)) {
			return ctx.Err()
		}
	}
}

// transferInterrupted: the stream broke, not the gateway's refusal.
func transferInterrupted(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// transferError makes a gateway's refusal a permanent failure; an archive
// error is its own.
func transferError(what string, err error) error {
	s, isStatus := status.FromError(err)
	switch {
	case !isStatus:
		return err
	case s.Code() == codes.PermissionDenied, s.Code() == codes.NotFound, s.Code() == codes.InvalidArgument, s.Code() == codes.Unimplemented:
		return permanent(what + ": " + s.Message())
	default:
		return fmt.Errorf("%s: %s", what, s.Message())
	}
}

// putSnapshot lists the chain data dir and streams its archive, written
// by another goroutine into a pipe, in chunks of snapshotChunkSize.
func (a *opsAgent) putSnapshot(ctx context.Context, id, snapshotID string, l leftOut, progress ProgressFunc) (*agentv1.SnapshotResult, error) {
	root, err := os.OpenRoot(a.cfg.ChainDir)
	if err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	entries, total, err := listSnapshot(root, l)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx) // ends the stream unless it closed whole
	defer cancel()
	idle := watchIdle(snapshotIdle, cancel)
	defer idle.stop()
	stream, err := a.gw.rpc().PutSnapshot(ctx)
	if err != nil {
		return nil, idle.explain(err)
	}
	pr, pw := io.Pipe()
	archived := make(chan archiveOutcome, 1)
	go func() {
		m, err := writeArchive(root, entries, pw, func(n int64) { progress(bytesProgress("archiving", n, total)) })
		pw.CloseWithError(err)
		archived <- archiveOutcome{m, err}
	}()
	chunk := &agentv1.SnapshotChunk{NodeId: a.cfg.NodeID, CommandId: id, SnapshotId: snapshotID}
	serr := sendChunks(stream, pr, chunk, idle)
	pr.CloseWithError(errStreamEnded) // frees the writer if sending stopped early
	out := <-archived
	if out.err != nil && !errors.Is(out.err, errStreamEnded) {
		return nil, out.err // the stream is cancelled, never closed whole: nothing is stored
	}
	if serr != nil {
		return nil, idle.explain(serr)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return nil, idle.explain(err)
	}
	return snapshotResult(snapshotID, out.manifest), nil
}

// errStreamEnded is what the archive writer meets once the stream ended.
var errStreamEnded = errors.New("the snapshot stream ended")

type archiveOutcome struct {
	manifest *agentv1.SnapshotManifest
	err      error
}

// sendChunks sends what r holds until it ends. A fresh buffer each time:
// gRPC may still hold the message sent.
func sendChunks(stream agentv1.AgentService_PutSnapshotClient, r io.Reader, chunk *agentv1.SnapshotChunk, idle *idleWatch) error {
	for {
		buf := make([]byte, snapshotChunkSize)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			c := &agentv1.SnapshotChunk{NodeId: chunk.NodeId, CommandId: chunk.CommandId, SnapshotId: chunk.SnapshotId, Data: buf[:n]}
			if serr := stream.Send(c); errors.Is(serr, io.EOF) {
				return endedEarly(stream)
			} else if serr != nil {
				return serr
			}
			idle.touch()
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// endedEarly is why the gateway ended a stream before its end: the
// status it closed the stream with.
func endedEarly(stream agentv1.AgentService_PutSnapshotClient) error {
	if _, err := stream.CloseAndRecv(); err != nil {
		return err
	}
	return status.Error(codes.Internal, "the gateway ended the snapshot stream before its end")
}

func snapshotResult(id string, m *agentv1.SnapshotManifest) *agentv1.SnapshotResult {
	res := &agentv1.SnapshotResult{SnapshotId: id, Files: uint64(len(m.GetFiles()))}
	for _, f := range m.GetFiles() {
		res.Bytes += f.GetSize()
	}
	return res
}

func bytesProgress(msg string, done, total int64) Progress {
	p := Progress{Message: msg, BytesDone: uint64(done), BytesTotal: uint64(max(total, 0))}
	if total > 0 {
		p.Percent = min(100, 100*float64(done)/float64(total))
	}
	return p
}

// getSnapshot streams the snapshot from the gateway into restoreArchive.
func (a *opsAgent) getSnapshot(ctx context.Context, id, snapshotID string, l leftOut, progress ProgressFunc) (*agentv1.SnapshotResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := watchIdle(snapshotIdle, cancel)
	defer idle.stop()
	stream, err := a.gw.rpc().GetSnapshot(ctx, &agentv1.GetSnapshotRequest{NodeId: a.cfg.NodeID, CommandId: id, SnapshotId: snapshotID})
	if err != nil {
		return nil, idle.explain(err)
	}
	r := &chunkReader{stream: stream, snapshotID: snapshotID, idle: idle,
		progress: func(n int64) { progress(bytesProgress("restoring", n, 0)) }}
	res, err := restoreArchive(a.cfg.ChainDir, snapshotID, r, l)
	if rerr := r.failure(); rerr != nil {
		return nil, idle.explain(rerr) // the stream broke: what the archive made of it is beside the point
	}
	return res, err
}

// chunkReader reads the data of a GetSnapshot stream. It keeps the
// stream's error, so a broken stream is told from a broken archive.
type chunkReader struct {
	stream     agentv1.AgentService_GetSnapshotClient
	snapshotID string
	idle       *idleWatch
	progress   func(int64)
	buf        []byte
	n          int64
	err        error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		c, err := r.stream.Recv()
		if err != nil {
			r.err = err
			return 0, err
		}
		r.idle.touch()
		if c.GetSnapshotId() != r.snapshotID {
			r.err = permanent("the gateway sent a chunk of another snapshot")
			return 0, r.err
		}
		r.buf = c.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.n += int64(n)
	r.progress(r.n)
	return n, nil
}

// failure is the stream's error; nil when it ended whole.
func (r *chunkReader) failure() error {
	if errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// idleWatch cancels a transfer in which no chunk moved for a while.
type idleWatch struct {
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func watchIdle(d time.Duration, cancel context.CancelFunc) *idleWatch {
	w := &idleWatch{d: d}
	w.t = time.AfterFunc(d, func() { w.fired.Store(true); cancel() })
	return w
}

func (w *idleWatch) touch() { w.t.Reset(w.d) }
func (w *idleWatch) stop()  { w.t.Stop() }

// explain turns the cancellation the watch caused into Unavailable, so
// that the transfer is made again.
func (w *idleWatch) explain(err error) error {
	if err != nil && w.fired.Load() {
		return status.Errorf(codes.Unavailable, "no snapshot data moved for %s", w.d)
	}
	return err
}
