package web

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// maxBodyBytes bounds every JSON request body.
const maxBodyBytes = 64 << 10

// decodeJSON reads the request body strictly into dst: one JSON value, no
// unknown fields, no trailing data, at most maxBodyBytes. Every failure is
// EInvalid (400) or ETooLarge (413) with a message naming what is wrong.
func decodeJSON(c *gin.Context, dst any) error {
	return decodeBody(c.Request.Body, maxBodyBytes, dst)
}

func decodeBody(r io.Reader, limit int64, dst any) error {
	if r == nil {
		return engine.Errorf(engine.EInvalid, "request body is empty")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, io.NopCloser(r), limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return jsonError(err, limit)
		}
		return engine.Errorf(engine.EInvalid, "request body must hold a single JSON value")
	}
	return nil
}

// jsonError says what is wrong with a body in words a client can act on.
func jsonError(err error, limit int64) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var when *time.ParseError
	switch {
	case tooLarge(err):
		return engine.Errorf(engine.ETooLarge, "request body exceeds %d bytes", limit)
	case errors.Is(err, io.EOF):
		return engine.Errorf(engine.EInvalid, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return engine.Errorf(engine.EInvalid, "malformed JSON: the body ends too early")
	case errors.As(err, &syntax):
		return engine.Errorf(engine.EInvalid, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return engine.Errorf(engine.EInvalid, "field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case errors.As(err, &typ):
		return engine.Errorf(engine.EInvalid, "request body must be a JSON object")
	case errors.As(err, &when):
		return engine.Errorf(engine.EInvalid, "times must be RFC 3339, such as 2026-01-02T15:04:05Z")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return engine.Errorf(engine.EInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return engine.Errorf(engine.EInvalid, "malformed JSON")
}

func tooLarge(err error) bool {
	var e *http.MaxBytesError
	return errors.As(err, &e)
}

// jsonKind names a Go kind as a JSON type.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a number"
}

// decodeOptionalJSON is decodeJSON for a body that may be left out: no
// body leaves dst as it is.
func decodeOptionalJSON(c *gin.Context, dst any) error {
	if c.Request.Body == nil || c.Request.ContentLength == 0 {
		return nil
	}
	body := bufio.NewReader(c.Request.Body)
	if _, err := body.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	return decodeBody(body, maxBodyBytes, dst)
}
