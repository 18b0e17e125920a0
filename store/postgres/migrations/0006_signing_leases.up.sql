-- The host that may sign with each key of a node (engine.SigningLease):
-- one row per key, changed only under its row lock.
CREATE TABLE signing_leases (
    node_id            text COLLATE "C" NOT NULL,
    key_name           text COLLATE "C" NOT NULL,
    holder_node_id     text COLLATE "C" NOT NULL,
    holder_incarnation text NOT NULL,
    epoch              bigint NOT NULL CHECK (epoch > 0),
    granted_at         timestamptz NOT NULL,
    released_at        timestamptz,
    release_reason     text NOT NULL DEFAULT '',
    version            bigint NOT NULL,
    PRIMARY KEY (node_id, key_name)
);

-- The host an agent enrolled for (engine.HostSpec.Incarnation): the token
-- carries it to the registration, which the gateway compares with a
-- lease's holder before it hands out a START.
ALTER TABLE enrollment_tokens ADD COLUMN incarnation text NOT NULL DEFAULT '';
ALTER TABLE agent_registrations ADD COLUMN incarnation text NOT NULL DEFAULT '';
