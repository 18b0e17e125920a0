-- A payment shows why it is underpaid or waiting, and what it activated.
ALTER TABLE payments ADD COLUMN status_reason text NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN activated_subscription_ids text[] NOT NULL DEFAULT '{}';
