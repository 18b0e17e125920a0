// Package redis implements engine.Cache on Redis through go-redis, against
// an external server or a miniredis embedded in the process (embedded.go).
// Both go through the same client code: only the server differs.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	goredis "github.com/redis/go-redis/v9"
)

// Options tune a Cache. The zero value is usable.
type Options struct {
	// KeyPrefix is put before every key, so that several appliances or
	// tests can share one server without seeing each other's keys.
	KeyPrefix string
	// DialTimeout bounds one connection attempt; default 2s.
	DialTimeout time.Duration
	// IOTimeout bounds one read or write on a connection; default 1s. The
	// cache is on the request path: a slow server must fail fast so the
	// callers' circuit breakers can take over.
	IOTimeout time.Duration
}

const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = time.Second
)

// Cache is engine.Cache on one Redis server. Open must succeed before any
// other method is called.
type Cache struct {
	url     string
	opts    Options
	client  *goredis.Client
	onClose func() // stops the embedded server, if any
}

var _ engine.Cache = (*Cache)(nil)

// New returns a Cache for the server at url (redis://[user:password@]host:port/db
// or rediss:// for TLS). It does no I/O.
func New(url string, opts Options) *Cache {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = defaultDialTimeout
	}
	if opts.IOTimeout <= 0 {
		opts.IOTimeout = defaultIOTimeout
	}
	return &Cache{url: url, opts: opts}
}

// Open connects and checks the server answers within the timeouts.
func (c *Cache) Open(ctx context.Context) error {
	ro, err := goredis.ParseURL(c.url)
	if err != nil {
		// The parser's message repeats the URL, which may hold a password.
		return engine.Errorf(engine.EInvalid, "redis url is malformed (not shown: it may hold a password)")
	}
	c.tune(ro)
	client := goredis.NewClient(ro)
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout+c.opts.IOTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return c.fail(ctx, "connect", err)
	}
	c.client = client
	return nil
}

// tune sets the timeouts and retries so that a dead server is reported in
// about a second rather than after go-redis's generous defaults.
func (c *Cache) tune(ro *goredis.Options) {
	ro.DialTimeout = c.opts.DialTimeout
	ro.ReadTimeout = c.opts.IOTimeout
	ro.WriteTimeout = c.opts.IOTimeout
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = 1         // one more try covers a pooled connection the server dropped
	ro.DialerRetries = 2      // attempts per dial
	ro.DisableIdentity = true // no CLIENT SETINFO: miniredis and older servers lack it
}

// Close releases the connections (and stops the embedded server, if any).
func (c *Cache) Close() error {
	var err error
	if c.client != nil {
		if cerr := c.client.Close(); cerr != nil && !errors.Is(cerr, goredis.ErrClosed) {
			err = fmt.Errorf("close redis client: %w", cerr)
		}
	}
	if c.onClose != nil {
		c.onClose()
		c.onClose = nil
	}
	return err
}

// Ping checks the server answers.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.client.Ping(ctx).Err(); err != nil {
		return c.fail(ctx, "ping", err)
	}
	return nil
}

// key namespaces a key by the configured prefix and its kind.
func (c *Cache) key(kind, id string) string { return c.opts.KeyPrefix + kind + ":" + id }

// fail translates a go-redis error for op into a domain error: a server that
// cannot be reached, cannot serve or does not answer before the deadline is
// EUnavailable; a command the server rejected is a bug (EInternal).
// Addresses are dropped from the message.
func (c *Cache) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("cache %s: %w", op, err) // the caller gave up: not the server's fault
	}
	if rejected(err) {
		return fmt.Errorf("cache %s: %w", op, err)
	}
	return engine.Errorf(engine.EUnavailable, "cache %s: redis is unavailable: %s", op, withoutAddress(err))
}

// rejected reports whether the server answered err to a well-formed
// connection, and not because it is down, loading, full or misconfigured.
func rejected(err error) bool {
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return false
	}
	switch {
	case goredis.IsLoadingError(err), goredis.IsReadOnlyError(err), goredis.IsMasterDownError(err),
		goredis.IsClusterDownError(err), goredis.IsTryAgainError(err), goredis.IsMaxClientsError(err),
		goredis.IsAuthError(err), goredis.IsPermissionError(err), goredis.IsOOMError(err):
		return false
	}
	return true
}

// withoutAddress describes a network error without the server's address
// (an operator reads the configuration for that, not the error).
func withoutAddress(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}
