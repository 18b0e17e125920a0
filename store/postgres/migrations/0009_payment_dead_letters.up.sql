-- Payment events the consumer gave up on (engine.PaymentDeadLetter): kept,
-- with a critical incident, until an operator redrives them.
CREATE TABLE payment_dead_letters (
    id            text COLLATE "C" PRIMARY KEY,
    subject       text NOT NULL,
    message_id    text NOT NULL,
    event_id      text NOT NULL,
    payment_id    text NOT NULL,
    payload       bytea NOT NULL,
    error         text NOT NULL,
    deliveries    integer NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('dead', 'redriven', 'resolved')),
    redriven_at   timestamptz,
    redriven_by   text NOT NULL,
    version       bigint NOT NULL
);
CREATE INDEX payment_dead_letters_first_seen_idx ON payment_dead_letters (first_seen_at DESC, id);
CREATE INDEX payment_dead_letters_status_idx ON payment_dead_letters (status, first_seen_at DESC, id);
