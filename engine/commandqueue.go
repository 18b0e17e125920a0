package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The Store is the source of truth for commands; the Cache's per-node queue
// is a fast copy of the unfinished ones that agents read on each heartbeat.
// The two functions here keep the copy recoverable: a command reaches the
// Store before the queue, and the queue can be refilled from the Store.

// rebuildLimit caps each status's listing when the queue is rebuilt: the
// port has no paging, and an appliance holds far fewer unfinished commands.
const rebuildLimit = 100_000

// EnqueueCommand records c in the Store as queued, then appends it to its
// node's queue. If the Cache fails after the Store succeeded, the command is
// kept and RebuildCommandQueue queues it at the next start. It fills c.ID
// when empty, c.Status, and c.CreatedAt (when zero) and c.UpdatedAt.
// Returns EInvalid without a node or a type, the Store's error (EConflict
// for a taken ID), or the Cache's (EUnavailable) once c is recorded.
func EnqueueCommand(ctx context.Context, commands CommandStore, cache Cache, c *Command) error {
	if c.NodeID == "" || c.Type == 0 {
		return Errorf(EInvalid, "a command needs a node and a type")
	}
	if c.ID == "" {
		c.ID = NewID("cmd")
	}
	if c.CreatedAt.IsZero() {
		// Microseconds: the precision every Store keeps.
		c.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	c.Status, c.UpdatedAt = CommandQueued, c.CreatedAt
	if err := commands.CreateCommand(ctx, c); err != nil {
		return fmt.Errorf("record command: %w", err)
	}
	if err := cache.EnqueueCommand(ctx, c.NodeID, c.ID); err != nil {
		return fmt.Errorf("queue command %s (recorded: it is queued again at the next start): %w", c.ID, err)
	}
	return nil
}

// RebuildCommandQueue puts every command the Store holds as queued or
// delivered back on its node's queue, oldest first, so that an empty Cache
// after a restart loses none and each node keeps its order. Delivered ones
// count because an agent may not have acted on them: ids stay queued until
// acknowledged, and agents ignore ids they already ran. Ids still queued
// keep their place. It returns how many commands it enqueued.
func RebuildCommandQueue(ctx context.Context, commands CommandStore, cache Cache) (int, error) {
	unfinished, complete, err := listUnfinishedCommands(ctx, commands)
	if err != nil {
		return 0, err
	}
	for i, c := range unfinished {
		if err := cache.EnqueueCommand(ctx, c.NodeID, c.ID); err != nil {
			return i, fmt.Errorf("requeue command %s: %w", c.ID, err)
		}
	}
	if !complete {
		return len(unfinished), Errorf(EInternal, "more than %d unfinished commands of one status: only the oldest were queued again", rebuildLimit)
	}
	return len(unfinished), nil
}

// listUnfinishedCommands returns the queued and delivered commands, oldest
// first, and whether that is all of them (false when a status has more than
// rebuildLimit).
func listUnfinishedCommands(ctx context.Context, commands CommandStore) ([]*Command, bool, error) {
	var all []*Command
	complete := true
	for _, status := range []CommandStatus{CommandDelivered, CommandQueued} {
		cs, err := commands.ListCommandsByStatus(ctx, status, rebuildLimit)
		if err != nil {
			return nil, false, fmt.Errorf("list %s commands: %w", status, err)
		}
		complete = complete && len(cs) < rebuildLimit
		all = append(all, cs...)
	}
	// Each list is oldest first; merged, a node's delivered and queued
	// commands must interleave by age.
	slices.SortStableFunc(all, func(a, b *Command) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return all, complete, nil
}
