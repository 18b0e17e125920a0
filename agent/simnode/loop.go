package simnode

import (
	"context"
	"path/filepath"
	"time"
)

// run is the node's only goroutine touching its chain and behaviour.
func (n *Node) run(ctx context.Context) {
	blocks := time.NewTicker(n.cfg.BlockInterval)
	defer blocks.Stop()
	saves := time.NewTicker(stateSaveInterval)
	defer saves.Stop()
	var polls <-chan time.Time
	if n.control != nil {
		t := time.NewTicker(n.cfg.ControlPoll)
		defer t.Stop()
		polls = t.C
	}
	crash := newCrashTimer(n.cfg.CrashAfter)
	defer crash.disarm()
	crash.follow(n.now.mode)

	for n.err == nil {
		select {
		case <-ctx.Done():
			n.stop()
			return
		case <-blocks.C:
			n.chain.advance(n.now.mode)
			n.publish()
		case <-polls:
			n.pollControl()
			crash.follow(n.now.mode)
		case <-saves.C:
			n.saveChain()
		case <-crash.c:
			n.cfg.Logger.Error("simulated crash", "after", n.cfg.CrashAfter)
			n.err = ErrCrashLoop
		}
	}
	n.stop()
}

// stop saves the chain, closes the listener and marks the node done.
func (n *Node) stop() {
	n.saveChain()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.server.Shutdown(ctx); err != nil {
		_ = n.server.Close()
	}
	n.cfg.Logger.Info("simulated node stopped", "height", n.chain.Height)
	close(n.done)
}

func (n *Node) saveChain() {
	path := filepath.Join(n.cfg.DataDir, statePath)
	if err := saveChain(path, n.chain, time.Now()); err != nil {
		n.cfg.Logger.Warn("cannot save chain state", "err", err)
	}
}

// pollControl applies a changed control file; a bad one is reported and
// the current behaviour kept.
func (n *Node) pollControl() {
	change := n.control.poll()
	if change == nil {
		return
	}
	if change.err != nil {
		n.cfg.Logger.Warn("ignoring control file", "path", n.control.path, "err", change.err)
		return
	}
	before := n.now
	n.now = change.control.over(behaviour{mode: n.cfg.Mode, peers: n.cfg.Peers})
	if n.now != before {
		n.cfg.Logger.Info("behaviour changed", "mode", n.now.mode, "peers", n.now.peers)
		n.publish()
	}
}

func (n *Node) publish() {
	if n.metrics == nil { // still preparing
		return
	}
	n.metrics.publish(&n.board, status{
		Status: "ok", NodeID: n.id, Version: n.cfg.Version, Mode: n.now.mode,
		Height: n.chain.Height, Highest: n.chain.highest, Syncing: n.chain.syncing(), Peers: n.now.peers,
	})
}

// crashTimer runs while the node is in ModeCrashLoop.
type crashTimer struct {
	after time.Duration
	timer *time.Timer
	c     <-chan time.Time // nil while disarmed
}

func newCrashTimer(after time.Duration) *crashTimer { return &crashTimer{after: after} }

// follow arms the timer on entering ModeCrashLoop and disarms it on leaving.
func (t *crashTimer) follow(mode Mode) {
	switch {
	case mode == ModeCrashLoop && t.timer == nil:
		t.timer = time.NewTimer(t.after)
		t.c = t.timer.C
	case mode != ModeCrashLoop:
		t.disarm()
	}
}

func (t *crashTimer) disarm() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer, t.c = nil, nil
	}
}
