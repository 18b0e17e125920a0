package engine

import (
	"context"
	"time"
)

// CommandType is what an agent is asked to do. The numbers are the wire
// values of the agent protocol and never change.
type CommandType int

const (
	CommandConfigure  CommandType = 1
	CommandStart      CommandType = 2
	CommandStop       CommandType = 3
	CommandRestart    CommandType = 4
	CommandCaptureKey CommandType = 8
	CommandUpgrade    CommandType = 9
	// CommandDeliverKeys writes the node's keys on its host; the agent
	// fetches the node's data key for it, as for CommandCaptureKey.
	CommandDeliverKeys CommandType = 10
	// CommandSnapshot streams an archive of the chain data dir to the
	// snapshot store; CommandRestoreSnapshot brings one back on a new host.
	CommandSnapshot        CommandType = 11
	CommandRestoreSnapshot CommandType = 12
)

// CommandStatus is where a command is. The Store is its source of truth;
// the Cache queue only mirrors the queued ones.
type CommandStatus string

const (
	CommandQueued       CommandStatus = "queued"
	CommandDelivered    CommandStatus = "delivered"
	CommandAcknowledged CommandStatus = "acknowledged"
	CommandCompleted    CommandStatus = "completed"
	CommandFailed       CommandStatus = "failed"
	CommandCancelled    CommandStatus = "cancelled"
)

// Finished reports whether the command will not change again.
func (s CommandStatus) Finished() bool {
	return s == CommandCompleted || s == CommandFailed || s == CommandCancelled
}

// Command is one instruction for a node's agent.
type Command struct {
	ID         string
	NodeID     string
	Type       CommandType
	Payload    []byte // JSON; secrets in it are ciphertext
	Status     CommandStatus
	Result     []byte // ciphertext for CAPTURE_KEY
	Error      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	AckedAt    time.Time
	FinishedAt time.Time
	Version    int64
}

// CommandStore keeps commands. Safe for concurrent use.
type CommandStore interface {
	// CreateCommand stores c with Version 1. Returns EConflict if the ID is taken.
	CreateCommand(ctx context.Context, c *Command) error
	// GetCommand returns ENotFound if missing.
	GetCommand(ctx context.Context, id string) (*Command, error)
	// UpdateCommand writes c if the version matches, then bumps it.
	// Returns ENotFound or EConflict.
	UpdateCommand(ctx context.Context, c *Command) error
	// ListCommandsByNode returns the node's commands in any of statuses (all
	// when none given), oldest first.
	ListCommandsByNode(ctx context.Context, nodeID string, statuses ...CommandStatus) ([]*Command, error)
	// ListCommandsByStatus returns commands in status across nodes, oldest
	// first, at most limit: used to rebuild the queue after a restart.
	ListCommandsByStatus(ctx context.Context, status CommandStatus, limit int) ([]*Command, error)
}
