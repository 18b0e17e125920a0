-- The node's last migration, step by step (JSON of engine.MigrationRecord).
ALTER TABLE nodes ADD COLUMN last_migration text NOT NULL DEFAULT '{}';
