-- What a node's host made of its configuration: allocated ports and the
-- digests of the artifacts it runs (JSON of engine.NodeRuntime).
ALTER TABLE nodes ADD COLUMN runtime text NOT NULL DEFAULT '{}';
