-- CertMagic's storage: certificates, keys and ACME accounts shared by every
-- instance. Keys compare bytewise (COLLATE "C") so a prefix is an index range.
CREATE TABLE certmagic_data (
	key      text COLLATE "C" PRIMARY KEY,
	value    bytea NOT NULL,
	modified timestamptz NOT NULL DEFAULT now()
);

-- One row per held lock. A lease past expires_at may be taken over, so a
-- crashed holder does not block issuance forever; a live holder renews it.
CREATE TABLE certmagic_locks (
	name       text PRIMARY KEY,
	owner      text NOT NULL,
	expires_at timestamptz NOT NULL
);
