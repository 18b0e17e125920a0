// Package mock holds function-field fakes of the engine's ports for
// use-case tests. Each method calls its field, so a test sets only the
// calls it expects: any other call panics on the nil field.
package mock

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
)

// CommandStore is a fake engine.CommandStore.
type CommandStore struct {
	CreateCommandFn        func(ctx context.Context, c *engine.Command) error
	GetCommandFn           func(ctx context.Context, id string) (*engine.Command, error)
	UpdateCommandFn        func(ctx context.Context, c *engine.Command) error
	ListCommandsByNodeFn   func(ctx context.Context, nodeID string, statuses ...engine.CommandStatus) ([]*engine.Command, error)
	ListCommandsByStatusFn func(ctx context.Context, status engine.CommandStatus, limit int) ([]*engine.Command, error)
}

var _ engine.CommandStore = (*CommandStore)(nil)

func (s *CommandStore) CreateCommand(ctx context.Context, c *engine.Command) error {
	return s.CreateCommandFn(ctx, c)
}

func (s *CommandStore) GetCommand(ctx context.Context, id string) (*engine.Command, error) {
	return s.GetCommandFn(ctx, id)
}

func (s *CommandStore) UpdateCommand(ctx context.Context, c *engine.Command) error {
	return s.UpdateCommandFn(ctx, c)
}

func (s *CommandStore) ListCommandsByNode(ctx context.Context, nodeID string, statuses ...engine.CommandStatus) ([]*engine.Command, error) {
	return s.ListCommandsByNodeFn(ctx, nodeID, statuses...)
}

func (s *CommandStore) ListCommandsByStatus(ctx context.Context, status engine.CommandStatus, limit int) ([]*engine.Command, error) {
	return s.ListCommandsByStatusFn(ctx, status, limit)
}
