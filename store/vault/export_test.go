package vault

// Token exposes the current token so that a test can revoke it behind the
// client's back.
func Token(s *Secrets) string { return s.session.Load().token }
