package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// APIKeyPrefix starts every API key, so a leaked one is recognised by
// secret scanners and told apart from a JWT without parsing.
const APIKeyPrefix = "hc_"

// apiKeyShownPrefix is how many leading characters of a key are kept to
// recognise it in lists: the "hc_" and 7 of its 43 random ones.
const apiKeyShownPrefix = len(APIKeyPrefix) + 7

// NewAPIKey is a request for an API key.
type NewAPIKey struct {
	Name      string
	Scopes    []string
	ExpiresAt time.Time // zero: never
}

// CreateAPIKey makes a key for the principal's user and returns it with
// the key itself, which is shown this once: only its SHA-256 is stored.
// The scopes must be ones the principal holds; admin only an administrator
// may grant. Returns EInvalid for a bad name, an unknown or empty scope list
// or a past expiry, EForbidden for a scope the principal cannot grant or
// for the bootstrap administrator, who owns no keys.
func (i *Identity) CreateAPIKey(ctx context.Context, p *Principal, req NewAPIKey) (*APIKey, string, error) {
	if p.Bootstrap() {
		return nil, "", Errorf(EForbidden, "the bootstrap token cannot own api keys; create a user first")
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, "", Errorf(EInvalid, "name must have 1 to 100 characters")
	}
	scopes, err := grantable(p, req.Scopes)
	if err != nil {
		return nil, "", err
	}
	now := i.now()
	if !req.ExpiresAt.IsZero() && !req.ExpiresAt.After(now) {
		return nil, "", Errorf(EInvalid, "expires_at must be in the future")
	}
	secret, err := newAPIKeySecret()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(secret))
	k := &APIKey{
		ID: NewID("key"), UserID: p.UserID, Name: name, Prefix: secret[:apiKeyShownPrefix],
		Hash: sum[:], Scopes: scopes, CreatedAt: now, ExpiresAt: req.ExpiresAt.UTC(),
	}
	if err := i.cfg.Users.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// grantable checks requested scopes against what p holds and returns them
// sorted without duplicates.
func grantable(p *Principal, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return nil, Errorf(EInvalid, "scopes must name at least one of %s", strings.Join(AllScopes, ", "))
	}
	scopes := slices.Clone(requested)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, s := range scopes {
		switch {
		case !knownScope(s):
			return nil, Errorf(EInvalid, "unknown scope %q", s)
		case s == ScopeAdmin && !p.Can(ScopeAdmin):
			return nil, Errorf(EForbidden, "only an administrator can grant the admin scope")
		case !p.Can(s):
			return nil, Errorf(EForbidden, "cannot grant scope %q, which this credential does not hold", s)
		}
	}
	return scopes, nil
}

// newAPIKeySecret is the prefix and 256 random bits, URL-safe.
func newAPIKeySecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", Errorf(EInternal, "api key randomness: %v", err)
	}
	defer Zero(b)
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ListAPIKeys returns the principal's user's keys, revoked ones included,
// oldest first; the bootstrap administrator has none.
func (i *Identity) ListAPIKeys(ctx context.Context, p *Principal) ([]*APIKey, error) {
	if p.Bootstrap() {
		return nil, nil
	}
	return i.cfg.Users.ListAPIKeys(ctx, p.UserID)
}

// RevokeAPIKey revokes one of the principal's user's keys. Returns
// ENotFound if the key does not exist or belongs to somebody else.
func (i *Identity) RevokeAPIKey(ctx context.Context, p *Principal, keyID string) error {
	if p.Bootstrap() {
		return Errorf(ENotFound, "api key %q not found", keyID)
	}
	return i.cfg.Users.RevokeAPIKey(ctx, p.UserID, keyID, i.now())
}

// authenticateKey returns the principal of an active API key. Its scopes
// are cut to what its user holds now, so a key made by an administrator
// loses admin when the user does.
func (i *Identity) authenticateKey(ctx context.Context, secret string) (*Principal, error) {
	denied := Errorf(EUnauthorized, "invalid, expired or revoked api key")
	sum := sha256.Sum256([]byte(secret))
	k, err := i.cfg.Users.GetAPIKeyByHash(ctx, sum[:])
	if IsCode(err, ENotFound) {
		return nil, denied
	}
	if err != nil {
		return nil, err
	}
	now := i.now()
	if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return nil, denied
	}
	u, err := i.cfg.Users.GetUser(ctx, k.UserID)
	if IsCode(err, ENotFound) {
		return nil, denied
	}
	if err != nil {
		return nil, err
	}
	held := userScopes(u)
	scopes := slices.DeleteFunc(slices.Clone(k.Scopes), func(s string) bool { return !slices.Contains(held, s) })
	return &Principal{UserID: u.ID, KeyID: k.ID, Scopes: scopes}, nil
}
