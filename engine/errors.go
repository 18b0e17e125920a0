// Package engine is the domain of the HoodCloud control plane: its types,
// error codes, the ports that adapters implement and the use-cases.
// It imports no infrastructure.
package engine

import (
	"errors"
	"fmt"
)

// Code classifies an error for every edge (HTTP, gRPC, CLI), each of which
// maps codes to its own statuses in one table.
type Code string

const (
	EConflict     Code = "conflict"      // a unique key is taken or a version is stale
	EForbidden    Code = "forbidden"     // authenticated but not allowed
	EInternal     Code = "internal"      // a bug or a backend failure; details are logged, not shown
	EInvalid      Code = "invalid"       // the input breaks a rule
	ENotFound     Code = "not_found"     // missing, or owned by somebody else
	ERateLimited  Code = "rate_limited"  // too many requests
	EUnauthorized Code = "unauthorized"  // no valid credential
	EUnavailable  Code = "unavailable"   // a dependency is down; retry later
	ETooLarge     Code = "too_large"     // the input exceeds a size limit
	EUnsupported  Code = "not_supported" // the configuration does not offer this
)

// Error is a domain error: a code for machines and a message safe to show
// to the caller. It never carries secrets or connection strings.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds a domain error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first domain error in err's chain,
// EInternal for any other error, and "" for nil.
func ErrorCode(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EInternal
	}
}

// ErrorMessage returns the message safe to show: a domain error's own, and
// a generic one for anything else so internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// IsCode reports whether err carries code.
func IsCode(err error, code Code) bool { return ErrorCode(err) == code }
