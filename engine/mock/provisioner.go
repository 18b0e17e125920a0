package mock

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Provisioner is a fake engine.Provisioner.
type Provisioner struct {
	CreateHostFn   func(ctx context.Context, spec engine.HostSpec) (engine.Host, error)
	DestroyHostFn  func(ctx context.Context, h engine.Host) error
	DescribeHostFn func(ctx context.Context, h engine.Host) (engine.HostStatus, error)
	ListHostsFn    func(ctx context.Context) ([]engine.ManagedHost, error)
}

var _ engine.Provisioner = (*Provisioner)(nil)

func (p *Provisioner) CreateHost(ctx context.Context, spec engine.HostSpec) (engine.Host, error) {
	return p.CreateHostFn(ctx, spec)
}

func (p *Provisioner) DestroyHost(ctx context.Context, h engine.Host) error {
	return p.DestroyHostFn(ctx, h)
}

func (p *Provisioner) DescribeHost(ctx context.Context, h engine.Host) (engine.HostStatus, error) {
	return p.DescribeHostFn(ctx, h)
}

func (p *Provisioner) ListHosts(ctx context.Context) ([]engine.ManagedHost, error) {
	return p.ListHostsFn(ctx)
}
