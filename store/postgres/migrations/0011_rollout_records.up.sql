-- Everything a rollout needs to resume, roll back and be explained: what it
-- installs (engine.UpgradeSpec) and how (engine.RolloutPlan) as JSON, what
-- each node ran before (engine.Release), and the group's rollouts in
-- order. The defaults read rows written before as empty.
ALTER TABLE rollouts
    ADD COLUMN batches    integer NOT NULL DEFAULT 0,
    ADD COLUMN spec       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN plan       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN message    text NOT NULL DEFAULT '',
    ADD COLUMN forced     boolean NOT NULL DEFAULT false,
    ADD COLUMN created_by text NOT NULL DEFAULT '';
CREATE INDEX rollouts_created_idx ON rollouts (created_at DESC, id DESC);

ALTER TABLE rollout_nodes
    ADD COLUMN previous      jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN new_version   text NOT NULL DEFAULT '',
    ADD COLUMN switch_height bigint NOT NULL DEFAULT 0;

ALTER TABLE rollout_groups
    ADD COLUMN rollouts   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN current    integer NOT NULL DEFAULT 0,
    ADD COLUMN skipped    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN message    text NOT NULL DEFAULT '',
    ADD COLUMN created_by text NOT NULL DEFAULT '';
CREATE INDEX rollout_groups_created_idx ON rollout_groups (created_at DESC, id DESC);
