-- An enrolment token remembers the key it was used for, so the same agent
-- can repeat an enrolment whose reply it lost.
ALTER TABLE enrollment_tokens ADD COLUMN key_fingerprint bytea;

-- The certificate a renewal replaced stays valid until it expires, so an
-- agent that lost the renewal's reply can still connect.
ALTER TABLE agent_registrations ADD COLUMN previous_cert_serial text NOT NULL DEFAULT '';
