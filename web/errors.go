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
		requestLogger(c).Error("request failed", "path", c.FullPath(), "err", err)
	}
	writeStatus(c, status, string(code), engine.ErrorMessage(err))
}

func writeStatus(c *gin.Context, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	c.AbortWithStatusJSON(status, b)
}

// loggerKey holds the server's logger in each request's context, so that
// the error writers log through it.
const loggerKey = "hoodcloud.logger"

// withLogger makes the configured logger the request's.
func (s *Server) withLogger(c *gin.Context) {
	c.Set(loggerKey, s.cfg.Logger)
	c.Next()
}

// requestLogger is the server's logger, or a discarding one for a context
// the server did not route.
func requestLogger(c *gin.Context) *slog.Logger {
	if l, ok := c.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
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
