package certkey

import (
	"slices"
	"testing"
)

func TestListDirectChildrenOrEverythingBelow(t *testing.T) {
	files := []string{"a/b/c.crt", "a/b/c.key", "a/d.json", "a/e/f/g"}
	tests := []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"a", false, []string{"a/b", "a/d.json", "a/e"}},
		{"a", true, []string{"a/b", "a/b/c.crt", "a/b/c.key", "a/d.json", "a/e", "a/e/f", "a/e/f/g"}},
		{"", false, []string{"a"}},
	}
	for _, tc := range tests {
		if got := List(tc.dir, files, tc.recursive); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, want %q", tc.dir, tc.recursive, got, tc.want)
		}
	}
}

func TestCheckRefusesKeysThatCannotNameAFile(t *testing.T) {
	for key, ok := range map[string]bool{
		"certificates/acme/example.com/example.com.crt": true,
		"a":    true,
		"":     false,
		"/a":   false,
		"a/":   false,
		"a//b": false,
	} {
		if err := Check(key); (err == nil) != ok {
			t.Errorf("Check(%q) = %v, want ok %v", key, err, ok)
		}
	}
}
