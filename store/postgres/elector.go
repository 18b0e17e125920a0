package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// leaderLockKey is the advisory lock the instances of an appliance compete
// for: one database is one appliance.
const leaderLockKey int64 = 0x686f6f64_6c656164 // "hoodlead"

// ElectorConfig configures an Elector.
type ElectorConfig struct {
	// URL is the store's database (postgres://…). It may hold a password:
	// it is never logged or put in an error.
	URL string
	// Epochs advances the leader epoch when this instance takes office:
	// the Store, whose fenced writes then refuse the previous leader's.
	Epochs engine.LeaderStore
	// Holder names this instance in the leader record.
	Holder string
	// Probe is how often the leader shows the server it is alive, and how
	// often a standby tries to take over; 2 s when zero.
	Probe time.Duration
	// Lease is how long a leader that stopped probing (paused, cut off)
	// keeps the lock before the server ends its session; 6 s when zero.
	// A standby takes over within Lease + Probe of the leader's last probe.
	// It must exceed twice Probe.
	Lease time.Duration
	// Logger receives leadership changes.
	Logger *slog.Logger
}

func (c ElectorConfig) withDefaults() ElectorConfig {
	if c.Probe <= 0 {
		c.Probe = 2 * time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 6 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Elector is engine.Leadership among the instances sharing one PostgreSQL
// store. The leader holds a transaction-level advisory lock in a
// transaction it keeps open on its own connection (not one of the pool),
// setting idle_in_transaction_session_timeout to the lease and proving it
// is alive with a query every Probe. A session lock alone would outlive a
// paused leader: its kernel keeps the TCP connection and answers
// keepalives. Idle in its transaction, a paused leader's session is ended
// by the server after the lease, which frees the lock. The open
// transaction holds no snapshot and no transaction id between probes, so it
// does not hold back vacuum.
//
// Standbys try the lock every Probe. The one that gets it advances the
// leader epoch and leads under it. A failed probe steps down at once and
// the elector starts over as a standby on a new connection.
type Elector struct {
	cfg  ElectorConfig
	conn *pgx.ConnConfig

	// Owned by the loop, and by Close once the loop has ended.
	session *pgx.Conn
	lock    pgx.Tx // open while leading

	mu      sync.Mutex
	epoch   int64
	leading bool
	until   time.Time // the lock is surely held until then
	err     error     // of the last round; nil when it reached the server

	stop context.CancelFunc
	done chan struct{}
}

var _ engine.Leadership = (*Elector)(nil)

// NewElector returns an elector; it does no I/O.
func NewElector(cfg ElectorConfig) *Elector {
	return &Elector{cfg: cfg.withDefaults()}
}

// Open runs the first round (so the first instance leads once Open
// returns) and keeps the election going in the background until Close.
// It fails if the database cannot be reached.
func (e *Elector) Open(ctx context.Context) error {
	if e.cfg.Lease <= 2*e.cfg.Probe {
		return engine.Errorf(engine.EInvalid, "leader lease %s must exceed twice the probe interval %s", e.cfg.Lease, e.cfg.Probe)
	}
	cfg, err := pgx.ParseConfig(e.cfg.URL)
	if err != nil {
		return errInvalidURL
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > e.cfg.Probe {
		cfg.ConnectTimeout = e.cfg.Probe
	}
	cfg.RuntimeParams["application_name"] = "hoodcloud leader election"
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(e.cfg.Lease.Milliseconds(), 10)
	e.conn = cfg
	e.round(ctx)
	if err := e.lastErr(); err != nil {
		e.closeSession()
		return fmt.Errorf("leader election: %w", err)
	}
	loop, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stop, e.done = stop, make(chan struct{})
	go e.run(loop)
	return nil
}

// Close stops the election and, when leading, releases the lock at once so
// a standby takes over within a probe.
func (e *Elector) Close() error {
	if e.stop == nil {
		return nil
	}
	e.stop()
	<-e.done
	e.stop = nil
	e.stepDown("closed")
	e.closeSession()
	return nil
}

// Leading implements engine.Leadership. It turns false on its own when the
// lease runs out without a probe, before the server could free the lock.
func (e *Elector) Leading() (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading || !time.Now().Before(e.until) {
		return 0, false
	}
	return e.epoch, true
}

// Ping is the election's health: it fails while the last round could not
// reach the database, leader or standby alike.
func (e *Elector) Ping(context.Context) error {
	return e.lastErr()
}

func (e *Elector) run(ctx context.Context) {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.round(ctx)
		}
	}
}

// round probes the lock when leading, else tries to take it. Any failure
// steps down and drops the session: the next round starts afresh.
func (e *Elector) round(ctx context.Context) {
	var err error
	if e.lock != nil {
		err = e.probe(ctx)
	} else {
		err = e.tryTake(ctx)
	}
	if ctx.Err() != nil {
		return // closing
	}
	if err != nil {
		err = electionFailed(err)
		e.stepDown(err.Error())
		e.closeSession()
	}
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
}

// probe proves the session, and so the lock, still lives: the server
// cannot have ended it for idling before start plus the lease.
func (e *Elector) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Probe)
	defer cancel()
	start := time.Now()
	if _, err := e.lock.Exec(ctx, "SELECT 1"); err != nil {
		return err
	}
	e.mu.Lock()
	e.until = start.Add(e.cfg.Lease - e.cfg.Probe)
	e.mu.Unlock()
	return nil
}

// tryTake takes the lock if nobody holds it, then advances the epoch and
// leads under it.
func (e *Elector) tryTake(ctx context.Context) error {
	if e.session == nil {
		s, err := pgx.ConnectConfig(ctx, e.conn)
		if err != nil {
			return err
		}
		e.session = s
	}
	tctx, cancel := context.WithTimeout(ctx, e.cfg.Probe)
	defer cancel()
	lock, err := e.session.Begin(tctx)
	if err != nil {
		return err
	}
	var got bool
	if err := lock.QueryRow(tctx, "SELECT pg_try_advisory_xact_lock($1)", leaderLockKey).Scan(&got); err != nil || !got {
		lock.Rollback(tctx) //nolint:errcheck // a broken session fails the next round
		return err
	}
	e.lock = lock
	// The advance waits for a write the deposed leader has in flight; the
	// lease must still hold once it is done.
	actx, cancel := context.WithTimeout(ctx, e.cfg.Lease-e.cfg.Probe)
	defer cancel()
	epoch, err := e.cfg.Epochs.AdvanceLeaderEpoch(actx, e.cfg.Holder)
	if err != nil {
		return err
	}
	if err := e.probe(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.epoch, e.leading = epoch, true
	e.mu.Unlock()
	e.cfg.Logger.Info("leadership taken", "holder", e.cfg.Holder, "epoch", epoch)
	return nil
}

// stepDown stops leading at once; why is logged.
func (e *Elector) stepDown(why string) {
	e.mu.Lock()
	was, epoch := e.leading, e.epoch
	e.leading, e.until = false, time.Time{}
	e.mu.Unlock()
	if was {
		e.cfg.Logger.Info("leadership lost", "holder", e.cfg.Holder, "epoch", epoch, "reason", why)
	}
}

// closeSession ends the session, and with it the lock's transaction.
func (e *Elector) closeSession() {
	if e.session == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Probe)
	defer cancel()
	e.session.Close(ctx) //nolint:errcheck // the server ends the session either way
	e.session, e.lock = nil, nil
}

// electionFailed is EUnavailable whatever went wrong on the session: the
// election cannot be held, whether the server is down or ended the session.
func electionFailed(err error) error {
	var (
		domain *engine.Error
		pgErr  *pgconn.PgError
	)
	switch {
	case errors.As(err, &domain):
		return err
	case errors.As(err, &pgErr) && pgErr.Code == "25P03": // idle_in_transaction_session_timeout
		return engine.Errorf(engine.EUnavailable, "the lease ran out before a probe (was this process paused?): the server ended the session")
	}
	return unavailable(err)
}

func (e *Elector) lastErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
