package engine

import (
	"context"
	"time"
)

// Scopes a credential can carry.
const (
	ScopeNodesRead          = "nodes:read"
	ScopeNodesWrite         = "nodes:write"
	ScopeSubscriptionsRead  = "subscriptions:read"
	ScopeSubscriptionsWrite = "subscriptions:write"
	ScopeAdmin              = "admin"
)

// User is a customer or an operator of the appliance.
type User struct {
	ID           string
	Email        string // unique, lower case
	PasswordHash string // argon2id encoded; never logged
	Admin        bool   // granted by an admin only
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64 // optimistic concurrency; bumped by every update
}

// APIKey is a long-lived credential. Only its hash is stored: the key is
// shown to its owner once.
type APIKey struct {
	ID         string
	UserID     string
	Name       string
	Prefix     string // first characters of the key, to recognise it in lists
	Hash       []byte // SHA-256 of the whole key; unique
	Scopes     []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: active
	LastUsedAt time.Time
}

// UserStore keeps users and their API keys. Methods are safe for concurrent use.
type UserStore interface {
	// CreateUser stores u, setting Version to 1.
	// Returns EConflict if the ID or the email is taken.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns ENotFound if no user has id.
	GetUser(ctx context.Context, id string) (*User, error)
	// GetUserByEmail returns ENotFound if no user has email.
	GetUserByEmail(ctx context.Context, email string) (*User, error)
	// UpdateUser writes u if u.Version matches the stored one, then bumps
	// u.Version. Returns ENotFound if missing, EConflict if the version is stale
	// or the new email is taken.
	UpdateUser(ctx context.Context, u *User) error
	// CountUsers returns how many users exist (to recognise a first user).
	CountUsers(ctx context.Context) (int, error)

	// CreateAPIKey returns EConflict if the ID or the hash is taken, ENotFound
	// if the user does not exist.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKeyByHash returns ENotFound if no key has hash (revoked ones are returned).
	GetAPIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// ListAPIKeys returns the user's keys, oldest first.
	ListAPIKeys(ctx context.Context, userID string) ([]*APIKey, error)
	// RevokeAPIKey sets RevokedAt. Returns ENotFound if the key does not exist
	// or belongs to another user; revoking twice keeps the first time.
	RevokeAPIKey(ctx context.Context, userID, keyID string, at time.Time) error
}
