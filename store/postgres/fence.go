package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fenceIdleTimeout ends the session of a fenced write whose writer stopped
// in the middle of it (a paused process keeps its connection open): its
// share lock on the leader row would otherwise keep the next leader's
// AdvanceLeaderEpoch waiting. It is shorter than the election's lease, so
// such a writer is gone before a standby can take over.
const fenceIdleTimeout = 2 * time.Second

// fence is the first statement of a leader-only write's transaction (ctx
// carries the leader epoch it was started under): the write goes on only
// while that epoch is the stored one. FOR SHARE holds the leader row until
// the transaction ends, so a new leader's AdvanceLeaderEpoch waits for this
// write, and a write that starts after it finds a newer epoch and is
// refused with engine.ErrStaleLeader.
func fence(ctx context.Context, tx pgx.Tx) error {
	epoch, ok := engine.LeaderEpochFrom(ctx)
	if !ok {
		return nil
	}
	var timeout string
	err := tx.QueryRow(ctx, `SELECT set_config('idle_in_transaction_session_timeout', $2, true)
		FROM leader_epoch WHERE epoch = $1 FOR SHARE`,
		epoch, strconv.FormatInt(fenceIdleTimeout.Milliseconds(), 10)).Scan(&timeout)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.ErrStaleLeader
	}
	return err
}

// fenceDone reports how a transaction fenced by ctx's epoch ended.
func fenceDone(ctx context.Context, err error) {
	if _, ok := engine.LeaderEpochFrom(ctx); ok {
		engine.FencedWriteDone(ctx, err)
	}
}

// exec runs one write statement: on the pool, or, for a leader-only write,
// in a fenced transaction.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (tag pgconn.CommandTag, err error) {
	if _, ok := engine.LeaderEpochFrom(ctx); !ok {
		return s.pool.Exec(ctx, sql, args...)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err = tx.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}
