package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ChainHeight reads the chain's latest block height now. An error made
// with permanent() says there is no height to read (no component serves
// metrics, or the chain is not meant to run); any other may pass.
type ChainHeight func(ctx context.Context) (uint64, error)

// heightPoll is how often an upgrade waiting for its target height reads
// the chain's: a fraction of the shortest block time of the chains run, so
// the switch lands within a block of the target.
const heightPoll = 200 * time.Millisecond

// switchPoint is when an upgrade stops the old version: at once (target
// 0), or once the chain has reached target.
type switchPoint struct {
	target uint64
	height ChainHeight
}

// check refuses, before any step, an upgrade that could wait for ever:
// a target height without a height to read.
func (s switchPoint) check(ctx context.Context) error {
	if s.target == 0 {
		return nil
	}
	if s.height == nil {
		return permanent(fmt.Sprintf("the upgrade waits for chain height %d, but this agent reads no chain height", s.target))
	}
	if _, err := s.height(ctx); isPermanent(err) {
		return permanent(fmt.Sprintf("the upgrade waits for chain height %d, but %v", s.target, err))
	}
	return nil
}

// await returns once the chain is at the target height or past it, with
// the height read then (0 without a target). While it waits it reports
// progress that moves with the chain: the staged version, the height and
// the target.
func (s switchPoint) await(ctx context.Context, staged string, progress ProgressFunc) (uint64, error) {
	if s.target == 0 {
		return 0, nil
	}
	t := time.NewTicker(heightPoll)
	defer t.Stop()
	from := uint64(0)
	for first := true; ; {
		h, err := s.height(ctx)
		switch {
		case err == nil && h >= s.target:
			progress(Progress{Percent: 100, Message: fmt.Sprintf("chain at %d: switching to %s", h, staged)})
			return h, nil
		case isPermanent(err):
			return 0, fmt.Errorf("waiting for chain height %d: %w", s.target, err)
		case err != nil:
			progress(Progress{Message: fmt.Sprintf("staged %s; chain height unreadable: %v", staged, err)})
		default:
			if first || h < from { // a chain restored from a snapshot may go back
				from, first = h, false
			}
			progress(Progress{Percent: 100 * float64(h-from) / float64(s.target-from),
				Message: fmt.Sprintf("staged %s; chain at %d of %d", staged, h, s.target)})
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for chain height %d: %w", s.target, ctx.Err())
		case <-t.C:
		}
	}
}

func isPermanent(err error) bool {
	var ce *commandError
	return errors.As(err, &ce) && !ce.retryable
}
