package engine

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/mail"
	"strings"
	"sync"
	"time"
)

// IdentityConfig is what the identity use-cases need.
type IdentityConfig struct {
	Users UserStore
	// JWTKeys sign and verify sessions (keys.BootMaterial.JWTKeys),
	// following rotations. Without them (the CLI creating a user) sessions
	// cannot be issued or verified; everything else works.
	JWTKeys JWTKeys
	// Issuer is the iss claim of every token; "hoodcloud" when empty.
	Issuer string
	// BootstrapTokens authenticate as the bootstrap administrator:
	// keys.BootMaterial.AdminToken and, in dev mode, the dev token. Empty ones
	// are ignored.
	BootstrapTokens []string
	// Password is the cost of new password hashes; DefaultPasswordParams
	// when zero.
	Password PasswordParams
	// ConcurrentHashes bounds how many password hashes run at once, as
	// each takes Password.Memory: 4 when zero (256 MiB at the defaults).
	ConcurrentHashes int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Identity holds the use-cases of users and their credentials: creating
// users, signing in, refreshing, API keys, and turning a credential into a
// Principal. Safe for concurrent use.
//
// Sessions: the access token is an RS256 JWT valid for AccessTokenTTL; the
// refresh token is an RS256 JWT too, valid for RefreshTokenTTL, with its own
// audience so neither can stand for the other. Both carry the user's
// Version as a generation ("gen") claim, and are accepted only while it
// still matches: any change to the user (password, admin flag, email, or
// RevokeSessions) ends every session at once, with no extra storage. A
// refresh token is not single use: until that generation changes or it
// expires, it can be replayed, which is the price of keeping no per-token
// state.
type Identity struct {
	cfg       IdentityConfig
	bootstrap [][sha256.Size]byte
	hashSlots chan struct{} // a token per password hash in progress

	dummyOnce sync.Once
	dummyHash string // verified against when the email is unknown, to spend the same time
}

// NewIdentity checks cfg; it does no I/O.
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.Users == nil {
		return nil, Errorf(EInvalid, "identity needs a user store")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "hoodcloud"
	}
	if cfg.Password == (PasswordParams{}) {
		cfg.Password = DefaultPasswordParams
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ConcurrentHashes <= 0 {
		cfg.ConcurrentHashes = 4
	}
	i := &Identity{cfg: cfg, hashSlots: make(chan struct{}, cfg.ConcurrentHashes)}
	for _, t := range cfg.BootstrapTokens {
		if t != "" {
			i.bootstrap = append(i.bootstrap, sha256.Sum256([]byte(t)))
		}
	}
	return i, nil
}

func (i *Identity) now() time.Time { return i.cfg.Now().UTC() }

// CreateUser creates a user with password; admin makes an administrator,
// which only the CLI (`hoodcloud admin create-user --admin`) and
// administrators may ask for (see Register). Returns EInvalid for a bad
// email or a weak password, EConflict if the email is taken.
func (i *Identity) CreateUser(ctx context.Context, email, password string, admin bool) (*User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	var hash string
	err = i.withHashSlot(ctx, func() (err error) {
		hash, err = i.cfg.Password.HashPassword(password)
		return err
	})
	if err != nil {
		return nil, err
	}
	now := i.now()
	u := &User{ID: NewID("user"), Email: email, PasswordHash: hash, Admin: admin, CreatedAt: now, UpdatedAt: now}
	err = i.cfg.Users.CreateUser(ctx, u)
	if IsCode(err, EConflict) {
		return nil, Errorf(EConflict, "a user with this email exists")
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Register is sign-up through the API: anyone may create a customer, only
// an administrator (caller may be nil) an administrator. Returns EForbidden
// when a non-administrator asks for admin, and CreateUser's errors.
func (i *Identity) Register(ctx context.Context, caller *Principal, email, password string, admin bool) (*User, error) {
	if admin && !caller.Can(ScopeAdmin) {
		return nil, Errorf(EForbidden, "only an administrator can create an administrator")
	}
	return i.CreateUser(ctx, email, password, admin)
}

// User returns the principal's user. Returns ENotFound for the bootstrap
// administrator, who is no user.
func (i *Identity) User(ctx context.Context, p *Principal) (*User, error) {
	if p.Bootstrap() {
		return nil, Errorf(ENotFound, "the bootstrap administrator is not a user")
	}
	return i.cfg.Users.GetUser(ctx, p.UserID)
}

// Login checks email and password and starts a session. Returns
// EUnauthorized, with the same message and about the same time whether the
// email is unknown or the password wrong.
func (i *Identity) Login(ctx context.Context, email, password string) (*Tokens, error) {
	denied := Errorf(EUnauthorized, "invalid email or password")
	if len(password) > maxPasswordBytes {
		return nil, denied
	}
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, denied
	}
	u, err := i.cfg.Users.GetUserByEmail(ctx, email)
	hash := ""
	switch {
	case IsCode(err, ENotFound):
		hash = i.dummy()
	case err != nil:
		return nil, err
	default:
		hash = u.PasswordHash
	}
	var ok bool
	err = i.withHashSlot(ctx, func() (err error) {
		ok, err = VerifyPassword(hash, password)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok || u == nil {
		return nil, denied
	}
	return i.issue(u)
}

// withHashSlot runs fn, a password hash, once fewer than ConcurrentHashes
// run: a burst of sign-ins queues instead of exhausting memory. Returns
// EUnavailable if ctx ends while waiting.
func (i *Identity) withHashSlot(ctx context.Context, fn func() error) error {
	select {
	case i.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return Errorf(EUnavailable, "too many sign-ins at once; retry later")
	}
	defer func() { <-i.hashSlots }()
	return fn()
}

// dummy is a hash of nothing anyone knows, made with the current costs.
func (i *Identity) dummy() string {
	i.dummyOnce.Do(func() {
		i.dummyHash, _ = i.cfg.Password.HashPassword(NewID("nobody"))
	})
	return i.dummyHash
}

// Refresh exchanges a refresh token for a new session. Returns
// EUnauthorized if the token is invalid, expired, or of a past generation.
func (i *Identity) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	c, err := i.verify(refreshToken, refreshAudience)
	if err != nil {
		return nil, err
	}
	u, err := i.currentUser(ctx, c)
	if err != nil {
		return nil, err
	}
	return i.issue(u)
}

// RevokeSessions ends every session of the principal's user by moving the
// user to a new generation. API keys are unaffected.
func (i *Identity) RevokeSessions(ctx context.Context, p *Principal) error {
	u, err := i.User(ctx, p)
	if err != nil {
		return err
	}
	u.UpdatedAt = i.now()
	return i.cfg.Users.UpdateUser(ctx, u)
}

// Authenticate turns a credential (a bootstrap token, an API key or an
// access token) into a Principal. Returns EUnauthorized for anything
// unknown, expired, revoked, malformed or longer than MaxCredentialBytes.
func (i *Identity) Authenticate(ctx context.Context, credential string) (*Principal, error) {
	switch {
	case credential == "" || len(credential) > MaxCredentialBytes:
		return nil, Errorf(EUnauthorized, "invalid credential")
	case i.isBootstrap(credential):
		return &Principal{Scopes: []string{ScopeAdmin}}, nil
	case strings.HasPrefix(credential, APIKeyPrefix):
		return i.authenticateKey(ctx, credential)
	}
	c, err := i.verify(credential, accessAudience)
	if err != nil {
		return nil, err
	}
	u, err := i.currentUser(ctx, c)
	if err != nil {
		return nil, err
	}
	return &Principal{UserID: u.ID, Scopes: userScopes(u)}, nil
}

// isBootstrap compares digests so every comparison takes the same time
// whatever the lengths.
func (i *Identity) isBootstrap(credential string) bool {
	sum := sha256.Sum256([]byte(credential))
	match := 0
	for _, b := range i.bootstrap {
		match |= subtle.ConstantTimeCompare(sum[:], b[:])
	}
	return match == 1
}

// currentUser returns the token's user if the token is of its current
// generation.
func (i *Identity) currentUser(ctx context.Context, c *tokenClaims) (*User, error) {
	u, err := i.cfg.Users.GetUser(ctx, c.Subject)
	if IsCode(err, ENotFound) {
		return nil, Errorf(EUnauthorized, "invalid or expired token")
	}
	if err != nil {
		return nil, err
	}
	if u.Version != c.Gen {
		return nil, Errorf(EUnauthorized, "the session was revoked; sign in again")
	}
	return u, nil
}

// normalizeEmail lower-cases and checks an address.
func normalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	bad := Errorf(EInvalid, "email must be a plain address such as name@example.com")
	if len(email) > 254 {
		return "", bad
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", bad
	}
	return email, nil
}
