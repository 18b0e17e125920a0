package web

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

type decodeTarget struct {
	Name   string   `json:"name"`
	Count  int      `json:"count"`
	Tags   []string `json:"tags"`
	Nested struct {
		On bool `json:"on"`
	} `json:"nested"`
}

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name, body string
		want       engine.Code
		wantMsg    string
	}{
		{"an object", `{"name":"a","count":2,"tags":["x"],"nested":{"on":true}}`, "", ""},
		{"whitespace around", " \n{\"name\":\"a\"}\n\t ", "", ""},
		{"empty", "", engine.EInvalid, "empty"},
		{"only whitespace", "   ", engine.EInvalid, "empty"},
		{"truncated", `{"name":"a"`, engine.EInvalid, "ends too early"},
		{"syntax", `{"name" "a"}`, engine.EInvalid, "at byte"},
		{"unknown field", `{"nope":1}`, engine.EInvalid, `unknown field "nope"`},
		{"unknown nested field", `{"nested":{"off":1}}`, engine.EInvalid, `unknown field "off"`},
		{"string for a number", `{"count":"2"}`, engine.EInvalid, `field "count" must be a number`},
		{"number for a string", `{"name":2}`, engine.EInvalid, `field "name" must be a string`},
		{"string for a bool", `{"nested":{"on":"yes"}}`, engine.EInvalid, `field "nested.on" must be a boolean`},
		{"an array body", `[]`, engine.EInvalid, "JSON object"},
		{"a second value", `{} {}`, engine.EInvalid, "single JSON value"},
		{"trailing garbage", `{}x`, engine.EInvalid, "single JSON value"},
		{"too large", `{"name":"` + strings.Repeat("a", 200) + `"}`, engine.ETooLarge, "exceeds 128 bytes"},
		{"too large after the value", `{}` + strings.Repeat(" ", 200), engine.ETooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v decodeTarget
			err := decodeBody(strings.NewReader(tt.body), 128, &v)
			if got := engine.ErrorCode(err); got != tt.want {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.want)
			}
			if !strings.Contains(engine.ErrorMessage(err), tt.wantMsg) {
				t.Fatalf("message %q lacks %q", engine.ErrorMessage(err), tt.wantMsg)
			}
		})
	}
}

// FuzzDecodeJSON checks that no input makes the strict decoder panic or
// answer anything but success, EInvalid or ETooLarge: bad input is never a
// server error.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"email":"a@example.com","password":"x"}`, `{"scopes":["nodes:read"]}`, `{"expires_at":"2030-01-01T00:00:00Z"}`, `[`, `{"email":5}`, `{} {}`, `null`, "\x00"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v struct {
			registerRequest
			createAPIKeyRequest
		}
		err := decodeBody(bytes.NewReader(data), 1<<10, &v)
		switch engine.ErrorCode(err) {
		case "", engine.EInvalid, engine.ETooLarge:
		default:
			t.Fatalf("decode %q: %v", data, err)
		}
		if len(data) > 1<<10 && err == nil {
			t.Fatalf("accepted %d bytes over a 1 KiB limit", len(data))
		}
	})
}
