package vault

import (
	"errors"
	"net/http"

	"github.com/hoodcloud/hoodcloud/engine"
)

// describe turns a Vault status into a domain error about subject, such as
// `secret "jwt/key"`; other errors pass unchanged. Messages hold the
// subject and the status only.
func describe(err error, subject string) error {
	var se *statusError
	if !errors.As(err, &se) {
		return err
	}
	switch status := se.status; {
	case status == http.StatusServiceUnavailable:
		return engine.Errorf(engine.EUnavailable, "%s: vault is sealed or unavailable (status 503)", subject)
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusPreconditionFailed:
		return engine.Errorf(engine.EUnavailable, "%s: vault is unavailable (status %d)", subject, status)
	case status == http.StatusForbidden:
		return engine.Errorf(engine.EForbidden, "%s: vault denied access (status 403); check the token's policy", subject)
	case status == http.StatusNotFound:
		return engine.Errorf(engine.ENotFound, "%s not found", subject)
	case status == http.StatusBadRequest:
		return engine.Errorf(engine.EInvalid, "%s: vault refused the request (status 400)", subject)
	default:
		return engine.Errorf(engine.EInternal, "%s: unexpected vault status %d", subject, status)
	}
}
