// Package agentload simulates a fleet of ops-agents in one process to
// measure the agent gateway: every simulated agent enrols with its own
// token and key, holds its own mutual-TLS connection and heartbeats on its
// own jittered schedule, reconnecting with backoff the way the ops-agent
// does. Latency is measured from each heartbeat's scheduled send time, so a
// slow gateway cannot hide its slowness by delaying the senders
// (coordinated omission).
//
// Bench runs the whole benchmark with the gateway in a child process, so
// that its CPU share is its own.
package agentload

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults of a fleet, those of the ops-agent where it has one.
const (
	DefaultCallTimeout = 10 * time.Second // the ops-agent's rpcTimeout
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	defaultEnrolling   = 16
	defaultVersion     = "agentload"
)

// EnrollmentToken lets one simulated agent enrol as NodeID.
type EnrollmentToken struct {
	NodeID string `json:"node_id"`
	Token  string `json:"token"`
}

// Config describes the fleet and the gateway it connects to.
type Config struct {
	// Gateway is the agent gateway's host:port. Required.
	Gateway string
	// ServerName is checked against the gateway's certificate; default the
	// host of Gateway.
	ServerName string
	// CA is the agent CA the gateway's certificate chains to. Required.
	CA *x509.Certificate
	// Tokens holds one token per agent; the fleet has as many agents.
	Tokens []EnrollmentToken
	// Version is the agent version heartbeats carry; default "agentload".
	Version string
	// CallTimeout bounds each call; default 10s, as the ops-agent.
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failed
	// heartbeat and between connection attempts; default 1s and 1m, as the
	// ops-agent.
	MinBackoff, MaxBackoff time.Duration
	// Enrolling is how many agents enrol at once; default 16.
	Enrolling int
}

func (c Config) withDefaults() Config {
	if c.ServerName == "" {
		c.ServerName = c.Gateway
		if host, _, err := net.SplitHostPort(c.Gateway); err == nil {
			c.ServerName = host
		}
	}
	if c.Version == "" {
		c.Version = defaultVersion
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Enrolling <= 0 {
		c.Enrolling = defaultEnrolling
	}
	return c
}

func (c Config) validate() error {
	if c.Gateway == "" || c.CA == nil || len(c.Tokens) == 0 {
		return errors.New("agentload: the gateway address, its CA and at least one token are required")
	}
	return nil
}

// Fleet is a set of enrolled agents, each with its own connection. Safe
// for one Session at a time.
type Fleet struct {
	cfg    Config
	agents []*simAgent
}

// Enroll enrols one agent per token over the gateway's Enroll call, opens
// each agent's mutual-TLS connection and makes its first heartbeat, so
// every connection is up before a Session starts. On error nothing is
// left open.
func Enroll(ctx context.Context, cfg Config) (*Fleet, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, agents: make([]*simAgent, len(cfg.Tokens))}
	if err := f.enrollAll(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// enrollAll enrols cfg.Enrolling agents at a time and stops at the first
// failure.
func (f *Fleet) enrollAll(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, f.cfg.Enrolling)
	var wg sync.WaitGroup
	for i, tok := range f.cfg.Tokens {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			a, err := enrollAgent(ctx, f.cfg, tok)
			if err != nil {
				cancel(fmt.Errorf("agentload: enrol %s: %w", tok.NodeID, err))
				return
			}
			f.agents[i] = a
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// Size is the number of agents.
func (f *Fleet) Size() int { return len(f.agents) }

// Close closes every agent's connection.
func (f *Fleet) Close() {
	for _, a := range f.agents {
		if a != nil {
			a.close()
		}
	}
}
