// Package temporal connects the control plane to a Temporal cluster through
// the SDK: the embedded dev server (see devserver) or an external cluster.
// It owns the worker that runs our workflows and activities.
package temporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TaskQueue is where our worker polls.
const TaskQueue = "hoodcloud"

// Config describes the connection.
type Config struct {
	HostPort  string // frontend address
	Namespace string
	Logger    *slog.Logger
}

// Client is a connection to Temporal plus our worker.
type Client struct {
	cfg        Config
	client     client.Client
	worker     worker.Worker
	registered []func(worker.Registry)
}

// New checks the configuration; it does no I/O.
func New(cfg Config) (*Client, error) {
	if cfg.HostPort == "" {
		return nil, errors.New("temporal: address is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg}, nil
}

// Register adds workflows and activities to the worker; call before Open.
func (c *Client) Register(f func(worker.Registry)) { c.registered = append(c.registered, f) }

// Open dials the frontend, checks the namespace exists and starts the worker.
func (c *Client) Open(ctx context.Context) error {
	cl, err := client.DialContext(ctx, client.Options{
		HostPort:  c.cfg.HostPort,
		Namespace: c.cfg.Namespace,
		Logger:    quietSDKLogger(c.cfg.Logger),
	})
	if err != nil {
		return engine.Errorf(engine.EUnavailable, "temporal: connect to %s: %v", c.cfg.HostPort, err)
	}
	if _, err := cl.WorkflowService().DescribeNamespace(ctx, describeNamespace(c.cfg.Namespace)); err != nil {
		cl.Close()
		return fmt.Errorf("temporal: namespace %q: %w", c.cfg.Namespace, err)
	}
	w := worker.New(cl, TaskQueue, worker.Options{})
	w.RegisterWorkflow(PingWorkflow)
	w.RegisterActivity(PingActivity)
	for _, f := range c.registered {
		f(w)
	}
	if err := w.Start(); err != nil {
		cl.Close()
		return fmt.Errorf("temporal: start worker: %w", err)
	}
	c.client, c.worker = cl, w
	return nil
}

// Close stops the worker, letting running activities finish, then disconnects.
func (c *Client) Close() error {
	if c.worker != nil {
		c.worker.Stop()
		c.worker = nil
	}
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
	return nil
}

// Ping asks the frontend for its health.
func (c *Client) Ping(ctx context.Context) error {
	if c.client == nil {
		return engine.Errorf(engine.EUnavailable, "temporal is not connected")
	}
	if _, err := c.client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return engine.Errorf(engine.EUnavailable, "temporal health: %v", err)
	}
	return nil
}

// SDK returns the SDK client, for the workflows adapter and tests.
func (c *Client) SDK() client.Client { return c.client }

// RoundTrip runs the built-in one-activity workflow under id and returns its
// answer: an end-to-end check that history, matching and our worker work.
func (c *Client) RoundTrip(ctx context.Context, id string) (string, error) {
	run, err := c.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                TaskQueue,
		WorkflowExecutionTimeout: time.Minute,
	}, PingWorkflow, "ping")
	if err != nil {
		return "", fmt.Errorf("start ping workflow: %w", err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil {
		return "", fmt.Errorf("ping workflow: %w", err)
	}
	return out, nil
}

func quietSDKLogger(l *slog.Logger) sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(levelFilter{l.Handler(), slog.LevelWarn}))
}
