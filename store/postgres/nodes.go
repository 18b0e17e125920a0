package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

// nodeColumnList is one line so CreateNodes can split it for COPY.
const nodeColumnList = `id, subscription_id, owner_id, chain_profile_id, node_type, state, host_provider, host_provider_id, host_address, host_region, host_instance_type, agent_version, binary_version, runtime, last_migration, last_seen_at, created_at, updated_at, version`

const nodeColumns = nodeColumnList

func scanNode(row pgx.Row) (*engine.Node, error) {
	var n engine.Node
	err := row.Scan(&n.ID, &n.SubscriptionID, &n.OwnerID, &n.ChainProfileID, &n.NodeType, &n.State,
		&n.Host.Provider, &n.Host.ProviderID, &n.Host.Address, &n.Host.Region, &n.Host.InstanceType,
		&n.AgentVersion, &n.BinaryVersion, jsonText(&n.Runtime), jsonText(&n.LastMigration), at(&n.LastSeenAt), at(&n.CreatedAt), at(&n.UpdatedAt), &n.Version)
	if u := n.Runtime.LastUpgrade; u != nil {
		u.At = utcOrZero(u.At) // JSON keeps the zone it was written in
	}
	return &n, err
}

// createdReason is the Reason of the state log's first entry.
const createdReason = "created"

// CreateNode writes the node and the first entry of its state log together.
func (s *Store) CreateNode(ctx context.Context, n *engine.Node) error {
	defer s.observe("create_node")()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var batch pgx.Batch
		batch.Queue(`INSERT INTO nodes (`+nodeColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1)`,
			n.ID, n.SubscriptionID, n.OwnerID, n.ChainProfileID, n.NodeType, n.State,
			n.Host.Provider, n.Host.ProviderID, n.Host.Address, n.Host.Region, n.Host.InstanceType,
			n.AgentVersion, n.BinaryVersion, columnJSON(n.Runtime), columnJSON(n.LastMigration), optTime(n.LastSeenAt), n.CreatedAt, n.UpdatedAt)
		batch.Queue(`INSERT INTO node_state_log (node_id, seq, from_state, to_state, reason, at)
			VALUES ($1, 1, '', $2, $3, $4)`, n.ID, n.State, createdReason, n.CreatedAt)
		return tx.SendBatch(ctx, &batch).Close()
	})
	if err != nil {
		return translate(err, "node")
	}
	n.Version = 1
	return nil
}

func (s *Store) GetNode(ctx context.Context, id string) (*engine.Node, error) {
	defer s.observe("get_node")()
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "node")
	}
	return n, nil
}

func (s *Store) GetNodeBySubscription(ctx context.Context, subscriptionID string) (*engine.Node, error) {
	defer s.observe("get_node_by_subscription")()
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE subscription_id = $1`, subscriptionID))
	if err != nil {
		return nil, translate(err, "node")
	}
	return n, nil
}

func (s *Store) ListNodesByOwner(ctx context.Context, ownerID, after string, limit int) ([]*engine.Node, error) {
	defer s.observe("list_nodes_by_owner")()
	return s.listNodes(ctx, "owner_id", ownerID, after, limit)
}

func (s *Store) ListNodesByState(ctx context.Context, state engine.NodeState, after string, limit int) ([]*engine.Node, error) {
	defer s.observe("list_nodes_by_state")()
	return s.listNodes(ctx, "state", string(state), after, limit)
}

func (s *Store) ListNodesByChain(ctx context.Context, chainProfileID, after string, limit int) ([]*engine.Node, error) {
	defer s.observe("list_nodes_by_chain")()
	return s.listNodes(ctx, "chain_profile_id", chainProfileID, after, limit)
}

// listNodes pages through the nodes whose column equals value, by ID: each
// column has an index on (column, id).
func (s *Store) listNodes(ctx context.Context, column, value, after string, limit int) ([]*engine.Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+nodeColumns+` FROM nodes
		WHERE `+column+` = $1 AND id > $2 ORDER BY id LIMIT $3`, value, after, noLimit(limit))
	return collect(rows, err, "node", scanNode)
}

func (s *Store) UpdateNode(ctx context.Context, n *engine.Node) error {
	defer s.observe("update_node")()
	return s.updateVersioned(ctx, "nodes", "node", n.ID, &n.Version,
		`UPDATE nodes SET subscription_id = $3, owner_id = $4, chain_profile_id = $5, node_type = $6,
			host_provider = $7, host_provider_id = $8, host_address = $9, host_region = $10, host_instance_type = $11,
			agent_version = $12, binary_version = $13, last_seen_at = $14, created_at = $15, updated_at = $16,
			runtime = $17, last_migration = $18, version = version + 1
		WHERE id = $1 AND version = $2`,
		n.SubscriptionID, n.OwnerID, n.ChainProfileID, n.NodeType,
		n.Host.Provider, n.Host.ProviderID, n.Host.Address, n.Host.Region, n.Host.InstanceType,
		n.AgentVersion, n.BinaryVersion, optTime(n.LastSeenAt), n.CreatedAt, n.UpdatedAt, columnJSON(n.Runtime), columnJSON(n.LastMigration))
}

// ChangeNodeState locks the node's row, so concurrent changes of one node
// serialise and each log entry gets the next sequence number. The node's
// UpdatedAt becomes c.At, as in the bbolt adapter.
func (s *Store) ChangeNodeState(ctx context.Context, version int64, c *engine.NodeStateChange) (*engine.Node, error) {
	defer s.observe("change_node_state")()
	var n *engine.Node
	change := *c // c is filled in only on success
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			stored int64
			state  engine.NodeState
		)
		err := tx.QueryRow(ctx, `SELECT version, state FROM nodes WHERE id = $1 FOR UPDATE`, c.NodeID).Scan(&stored, &state)
		switch {
		case err != nil:
			return err
		case stored != version:
			return engine.Errorf(engine.EConflict, "node was changed by someone else (stale version)")
		case !state.CanBecome(c.To):
			return engine.Errorf(engine.EInvalid, "a node cannot move from %s to %s", state, c.To)
		}
		change.From = state
		// One round trip for both writes: the row lock already orders them.
		var batch pgx.Batch
		queueStateLog(&batch, &change)
		batch.Queue(`UPDATE nodes SET state = $2, updated_at = $3, version = version + 1
			WHERE id = $1 RETURNING `+nodeColumns, c.NodeID, c.To, c.At).QueryRow(func(row pgx.Row) error {
			n, err = scanNode(row)
			return err
		})
		return tx.SendBatch(ctx, &batch).Close()
	})
	if err != nil {
		return nil, translate(err, "node")
	}
	c.From, c.Seq = change.From, change.Seq
	return n, nil
}

// queueStateLog queues the write of c with the node's next sequence
// number, setting c.Seq when the batch runs.
func queueStateLog(batch *pgx.Batch, c *engine.NodeStateChange) {
	batch.Queue(`INSERT INTO node_state_log (node_id, seq, from_state, to_state, reason, at)
		SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5 FROM node_state_log WHERE node_id = $1
		RETURNING seq`, c.NodeID, c.From, c.To, c.Reason, c.At).QueryRow(func(row pgx.Row) error {
		return row.Scan(&c.Seq)
	})
}

// TouchNode leaves the version alone: heartbeats must not make state
// changes stale.
func (s *Store) TouchNode(ctx context.Context, id string, seen time.Time, agentVersion string) error {
	defer s.observe("touch_node")()
	tag, err := s.pool.Exec(ctx, `UPDATE nodes SET last_seen_at = $2, agent_version = coalesce(nullif($3::text, ''), agent_version)
		WHERE id = $1`, id, seen, agentVersion)
	if err != nil {
		return translate(err, "node")
	}
	if tag.RowsAffected() == 0 {
		return engine.Errorf(engine.ENotFound, "node not found")
	}
	return nil
}

func (s *Store) ListNodeStateLog(ctx context.Context, nodeID string, since, until time.Time) ([]*engine.NodeStateChange, error) {
	defer s.observe("list_node_state_log")()
	rows, err := s.pool.Query(ctx, `SELECT node_id, seq, from_state, to_state, reason, at FROM node_state_log
		WHERE node_id = $1 AND at >= $2 AND at < $3 ORDER BY seq`, nodeID, since, until)
	return collect(rows, err, "node state change", scanStateChange)
}

func scanStateChange(row pgx.Row) (*engine.NodeStateChange, error) {
	var c engine.NodeStateChange
	err := row.Scan(&c.NodeID, &c.Seq, &c.From, &c.To, &c.Reason, at(&c.At))
	return &c, err
}

// CreateNodes stores many nodes as CreateNode would, each with Version 1
// and its initial state logged, in one transaction using COPY: for imports
// and benchmark fixtures, where one transaction per node is too slow.
// Returns EConflict, storing none, if any ID or subscription is taken.
func (s *Store) CreateNodes(ctx context.Context, nodes []*engine.Node) error {
	defer s.observe("create_nodes")()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"nodes"}, strings.Split(nodeColumnList, ", "),
			pgx.CopyFromSlice(len(nodes), func(i int) ([]any, error) {
				n := nodes[i]
				return []any{n.ID, n.SubscriptionID, n.OwnerID, n.ChainProfileID, n.NodeType, string(n.State),
					n.Host.Provider, n.Host.ProviderID, n.Host.Address, n.Host.Region, n.Host.InstanceType,
					n.AgentVersion, n.BinaryVersion, columnJSON(n.Runtime), columnJSON(n.LastMigration), optTime(n.LastSeenAt), n.CreatedAt, n.UpdatedAt, int64(1)}, nil
			}))
		if err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"node_state_log"}, []string{"node_id", "seq", "from_state", "to_state", "reason", "at"},
			pgx.CopyFromSlice(len(nodes), func(i int) ([]any, error) {
				n := nodes[i]
				return []any{n.ID, int64(1), "", string(n.State), createdReason, n.CreatedAt}, nil
			}))
		return err
	})
	if err != nil {
		return translate(err, "node")
	}
	for _, n := range nodes {
		n.Version = 1
	}
	if len(nodes) >= bulkAnalyzeThreshold {
		// Autovacuum would get there later; until then the planner, blind to
		// the new rows, sorts whole owners instead of walking an index.
		if _, err := s.pool.Exec(ctx, `ANALYZE nodes, node_state_log`); err != nil {
			return translate(err, "node")
		}
	}
	return nil
}

// bulkAnalyzeThreshold is how many nodes CreateNodes loads before it
// refreshes the planner's statistics.
const bulkAnalyzeThreshold = 1000

// columnJSON is a JSON text column's value, "{}" when empty. The values
// stored so are plain data that always encode.
func columnJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}
