package engine

import "context"

// Store is everything the control plane remembers durably. Adapters: bbolt
// (embedded default) and PostgreSQL.
type Store interface {
	UserStore
	SubscriptionStore
	PaymentStore
	PaymentDeadLetterStore
	ChainProfileStore
	NodeStore
	AgentStore
	CommandStore
	KeyStore
	InputStore
	IncidentStore
	UptimeStore
	RolloutStore
	LeaderStore
	SecretStore
	LeaseStore

	// Ping checks the backend answers, for /readyz.
	Ping(ctx context.Context) error
	// Close releases the backend; the Store is unusable afterwards.
	Close() error
}

// SecretStore keeps encrypted blobs for the local keyring: values are
// ciphertext before they reach the store.
type SecretStore interface {
	// PutSecret creates or replaces the blob named name.
	PutSecret(ctx context.Context, name string, ciphertext []byte) error
	// GetSecret returns ENotFound if missing.
	GetSecret(ctx context.Context, name string) ([]byte, error)
	// DeleteSecret removes the blob; a missing one is not an error.
	DeleteSecret(ctx context.Context, name string) error
	// ListSecrets returns the names starting with prefix, sorted.
	ListSecrets(ctx context.Context, prefix string) ([]string, error)
}
