-- The uptime buckets flagged for recomputation, so the worker finds them
-- without reading every bucket.
CREATE INDEX uptime_buckets_recompute_idx ON uptime_buckets (node_id, hour) WHERE recompute;
