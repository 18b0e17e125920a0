package engine

import "slices"

// AllScopes lists every scope, in the order they are shown.
var AllScopes = []string{ScopeNodesRead, ScopeNodesWrite, ScopeSubscriptionsRead, ScopeSubscriptionsWrite, ScopeAdmin}

// BootstrapPrincipalID names the bootstrap administrator, who is no user:
// it authenticates with the admin token made on first boot (or the dev
// token) and exists to create the first users.
const BootstrapPrincipalID = "bootstrap"

// Principal is who a request acts for, once its credential is checked.
type Principal struct {
	UserID string   // empty for the bootstrap administrator
	KeyID  string   // set when the credential is an API key
	Scopes []string // what the credential may do; admin implies every scope
}

// Can reports whether the principal holds scope, directly or through admin.
func (p *Principal) Can(scope string) bool {
	return p != nil && (slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin))
}

// Bootstrap reports whether the principal is the bootstrap administrator.
func (p *Principal) Bootstrap() bool { return p != nil && p.UserID == "" }

// ID identifies the credential, e.g. to count its requests: the API key
// when there is one, else the user, else the bootstrap administrator.
func (p *Principal) ID() string {
	switch {
	case p.KeyID != "":
		return p.KeyID
	case p.UserID != "":
		return p.UserID
	}
	return BootstrapPrincipalID
}

// userScopes are the scopes a user holds: every customer scope, and admin
// for administrators.
func userScopes(u *User) []string {
	n := len(AllScopes) - 1
	if u.Admin {
		n++
	}
	return slices.Clone(AllScopes[:n])
}

// knownScope reports whether s is one of AllScopes.
func knownScope(s string) bool { return slices.Contains(AllScopes, s) }
