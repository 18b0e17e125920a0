-- The first schema of the HoodCloud store.
--
-- Identifiers and names use COLLATE "C" so ORDER BY and keyset cursors
-- (id > $after) compare bytes, as the bbolt adapter and Go do, whatever
-- the database's default collation is. A zero time.Time in the domain
-- ("unset") is NULL here; required times are NOT NULL.

CREATE TABLE users (
    id            text COLLATE "C" PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    admin         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    user_id      text COLLATE "C" NOT NULL REFERENCES users (id),
    name         text NOT NULL,
    prefix       text NOT NULL,
    hash         bytea NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (hash);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at, id);

CREATE TABLE subscriptions (
    id               text COLLATE "C" PRIMARY KEY,
    user_id          text COLLATE "C" NOT NULL,
    chain_profile_id text COLLATE "C" NOT NULL,
    node_type        text NOT NULL,
    duration         text NOT NULL,
    provider         text NOT NULL,
    region           text NOT NULL,
    instance_type    text NOT NULL,
    status           text NOT NULL,
    payment_id       text COLLATE "C",
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, created_at DESC, id DESC);
CREATE INDEX subscriptions_payment_idx ON subscriptions (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX subscriptions_expiry_idx ON subscriptions (expires_at, id) WHERE status = 'active';
-- Creating the same purchase twice must find the pending one, not a second.
CREATE UNIQUE INDEX subscriptions_one_pending_key
    ON subscriptions (user_id, chain_profile_id, node_type, duration)
    WHERE status = 'pending_payment';

CREATE TABLE payments (
    id               text COLLATE "C" PRIMARY KEY,
    user_id          text COLLATE "C" NOT NULL,
    external_id      text,
    amount_cents     bigint NOT NULL,
    currency         text NOT NULL,
    status           text NOT NULL,
    subscription_ids text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    version          bigint NOT NULL
);
-- NULL (no provider reference yet) is never a duplicate.
CREATE UNIQUE INDEX payments_external_id_key ON payments (external_id);

CREATE TABLE payment_events (
    event_id     text COLLATE "C" PRIMARY KEY,
    payment_id   text COLLATE "C" NOT NULL,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz
);

CREATE TABLE chain_profile_refs (
    id         text COLLATE "C" PRIMARY KEY,
    version    text NOT NULL,
    checksum   text NOT NULL,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE nodes (
    id                 text COLLATE "C" PRIMARY KEY,
    subscription_id    text COLLATE "C" NOT NULL,
    owner_id           text COLLATE "C" NOT NULL,
    chain_profile_id   text COLLATE "C" NOT NULL,
    node_type          text NOT NULL,
    state              text NOT NULL,
    host_provider      text NOT NULL,
    host_provider_id   text NOT NULL,
    host_address       text NOT NULL,
    host_region        text NOT NULL,
    host_instance_type text NOT NULL,
    agent_version      text NOT NULL,
    binary_version     text NOT NULL,
    last_seen_at       timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint NOT NULL,
    CONSTRAINT nodes_subscription_key UNIQUE (subscription_id)
);
CREATE INDEX nodes_owner_idx ON nodes (owner_id, id);
CREATE INDEX nodes_state_idx ON nodes (state, id);
CREATE INDEX nodes_chain_idx ON nodes (chain_profile_id, id);

-- Append-only: written only together with the node row, in one transaction.
CREATE TABLE node_state_log (
    node_id    text COLLATE "C" NOT NULL REFERENCES nodes (id),
    seq        bigint NOT NULL,
    from_state text NOT NULL,
    to_state   text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (node_id, seq)
);
CREATE INDEX node_state_log_at_idx ON node_state_log (node_id, at);

CREATE TABLE enrollment_tokens (
    hash       bytea PRIMARY KEY,
    node_id    text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX enrollment_tokens_node_idx ON enrollment_tokens (node_id);

CREATE TABLE agent_registrations (
    node_id       text COLLATE "C" PRIMARY KEY,
    cert_serial   text NOT NULL,
    agent_version text NOT NULL,
    enrolled_at   timestamptz NOT NULL,
    revoked_at    timestamptz
);

CREATE TABLE commands (
    id          text COLLATE "C" PRIMARY KEY,
    node_id     text COLLATE "C" NOT NULL,
    type        integer NOT NULL,
    payload     bytea,
    status      text NOT NULL,
    result      bytea,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    acked_at    timestamptz,
    finished_at timestamptz,
    version     bigint NOT NULL
);
CREATE INDEX commands_node_status_idx ON commands (node_id, status, created_at, id);
CREATE INDEX commands_status_idx ON commands (status, created_at, id);

CREATE TABLE node_keys (
    node_id    text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    key_type   text NOT NULL,
    source     text NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (node_id, name)
);

CREATE TABLE provisioning_inputs (
    subscription_id text COLLATE "C" NOT NULL,
    name            text COLLATE "C" NOT NULL,
    type            text NOT NULL,
    value           text NOT NULL,
    ciphertext      bytea,
    status          text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, name)
);

CREATE TABLE incidents (
    id          text COLLATE "C" PRIMARY KEY,
    node_id     text COLLATE "C" NOT NULL,
    dedupe_key  text NOT NULL,
    severity    text NOT NULL,
    summary     text NOT NULL,
    opened_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    notified_at timestamptz,
    version     bigint NOT NULL
);
CREATE INDEX incidents_node_idx ON incidents (node_id, opened_at DESC, id DESC);
-- At most one open incident per problem of a node.
CREATE UNIQUE INDEX incidents_open_key ON incidents (node_id, dedupe_key) WHERE resolved_at IS NULL;

CREATE TABLE uptime_buckets (
    node_id      text COLLATE "C" NOT NULL,
    hour         timestamptz NOT NULL,
    up_seconds   bigint NOT NULL,
    down_seconds bigint NOT NULL,
    complete     boolean NOT NULL,
    recompute    boolean NOT NULL,
    PRIMARY KEY (node_id, hour)
);
CREATE INDEX uptime_buckets_hour_idx ON uptime_buckets (hour);

CREATE TABLE rollout_groups (
    id               text COLLATE "C" PRIMARY KEY,
    chain_profile_id text COLLATE "C" NOT NULL,
    components       text[] NOT NULL DEFAULT '{}',
    failure_policy   text NOT NULL,
    status           text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL
);

CREATE TABLE rollouts (
    id                text COLLATE "C" PRIMARY KEY,
    group_id          text COLLATE "C",
    chain_profile_id  text COLLATE "C" NOT NULL,
    component         text NOT NULL,
    target_version    text NOT NULL,
    strategy          text NOT NULL,
    batch_size        integer NOT NULL,
    canary_size       integer NOT NULL,
    failure_threshold integer NOT NULL,
    status            text NOT NULL,
    current_batch     integer NOT NULL,
    succeeded         integer NOT NULL,
    failed            integer NOT NULL,
    manifest_hash     text NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint NOT NULL
);
CREATE INDEX rollouts_group_idx ON rollouts (group_id) WHERE group_id IS NOT NULL;

CREATE TABLE rollout_nodes (
    rollout_id       text COLLATE "C" NOT NULL,
    node_id          text COLLATE "C" NOT NULL,
    batch_index      integer NOT NULL,
    status           text NOT NULL,
    previous_version text NOT NULL,
    error            text NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (rollout_id, node_id)
);
CREATE INDEX rollout_nodes_batch_idx ON rollout_nodes (rollout_id, batch_index, node_id);

-- One row: the epoch fences writes of a deposed leader.
CREATE TABLE leader_epoch (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     bigint NOT NULL,
    holder    text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO leader_epoch (epoch, holder) VALUES (0, '');

CREATE TABLE secrets (
    name       text COLLATE "C" PRIMARY KEY,
    ciphertext bytea NOT NULL
);
