package tlsconf

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapOnSlog gives CertMagic, which logs with zap, the appliance's slog
// logger. CertMagic logs names and CA responses, never private keys.
func zapOnSlog(l *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{logger: l})
}

type slogCore struct {
	logger *slog.Logger
	attrs  []slog.Attr
}

var _ zapcore.Core = (*slogCore)(nil)

func (c *slogCore) Enabled(lvl zapcore.Level) bool {
	return c.logger.Enabled(context.Background(), slogLevel(lvl))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{logger: c.logger, attrs: append(append([]slog.Attr{}, c.attrs...), toAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	attrs := append(append([]slog.Attr{slog.String("component", "certmagic")}, c.attrs...), toAttrs(fields)...)
	c.logger.LogAttrs(context.Background(), slogLevel(e.Level), e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func toAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}

func slogLevel(lvl zapcore.Level) slog.Level {
	switch {
	case lvl >= zapcore.ErrorLevel:
		return slog.LevelError
	case lvl == zapcore.WarnLevel:
		return slog.LevelWarn
	case lvl == zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
