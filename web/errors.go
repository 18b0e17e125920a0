package web

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[engine.Code]int{
	engine.EConflict:     http.StatusConflict,
	engine.EForbidden:    http.StatusForbidden,
	engine.EInternal:     http.StatusInternalServerError,
	engine.EInvalid:      http.StatusBadRequest,
	engine.ENotFound:     http.StatusNotFound,
	engine.ERateLimited:  http.StatusTooManyRequests,
	engine.EUnauthorized: http.StatusUnauthorized,
	engine.EUnavailable:  http.StatusServiceUnavailable,
	engine.ETooLarge:     http.StatusRequestEntityTooLarge,
	engine.EUnsupported:  http.StatusNotImplemented,
}

// errorBody is every error response: a stable code and a message.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers with err's status; internal details stay in the log.
func writeError(c *gin.Context, err error) {
	code := engine.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		slog.Default().Error("request failed", "path", c.FullPath(), "err", err)
	}
	writeStatus(c, status, string(code), engine.ErrorMessage(err))
}

func writeStatus(c *gin.Context, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	c.AbortWithStatusJSON(status, b)
}

// recoverJSON turns a panic into a 500 with a JSON body instead of a
// dropped connection.
func (s *Server) recoverJSON(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("panic in handler", "path", c.Request.URL.Path, "panic", r)
			writeStatus(c, http.StatusInternalServerError, string(engine.EInternal), "internal error")
		}
	}()
	c.Next()
}
