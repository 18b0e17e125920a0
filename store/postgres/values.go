package postgres

import (
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The domain uses zero values for "unset" (a zero time, an empty payment
// id); the schema uses NULL, so unique indexes and "IS NULL" filters mean
// what they say. These helpers convert both ways.

// optTime is the value to write for t: NULL when t is zero.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// optText is the value to write for s: NULL when s is empty.
func optText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeDst scans a timestamptz into a time.Time: NULL becomes the zero time,
// anything else UTC (pgx would return the local zone).
type timeDst struct{ t *time.Time }

func at(t *time.Time) timeDst { return timeDst{t} }

func (d timeDst) ScanTimestamptz(v pgtype.Timestamptz) error {
	*d.t = time.Time{}
	if v.Valid {
		*d.t = v.Time.UTC()
	}
	return nil
}

// textDst scans a nullable text into a string, NULL becoming "".
type textDst struct{ s *string }

func str(s *string) textDst { return textDst{s} }

func (d textDst) ScanText(v pgtype.Text) error {
	*d.s = v.String
	return nil
}

// list is the value to write for a list field: never NULL.
func list(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// nilIfEmpty reads an empty list back as nil, as the domain builds it.
func nilIfEmpty(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

// nonNilBytes is the value to write to a NOT NULL bytea: nil is empty.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// jsonDst scans a JSON text column into v; "" or "{}" leaves it empty.
type jsonDst struct{ v any }

func jsonText(v any) jsonDst { return jsonDst{v} }

func (d jsonDst) ScanText(t pgtype.Text) error {
	if !t.Valid || t.String == "" {
		return nil
	}
	return json.Unmarshal([]byte(t.String), d.v)
}
