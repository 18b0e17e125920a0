package engine_test

import (
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

func TestSecretAndKeyNames(t *testing.T) {
	tests := []struct {
		name             string
		validKey, secret bool
	}{
		{"hoodcloud-master", true, true},
		{"node_keys.v2", true, true},
		{"boot/jwt-signing-key", false, true},
		{"a/b/c", false, true},
		{"", false, false},
		{"-lead", false, false},
		{".hidden", false, false},
		{"a//b", false, false},
		{"/abs", false, false},
		{"trailing/", false, false},
		{"../escape", false, false},
		{"a/../b", false, false},
		{"white space", false, false},
		{"nul\x00", false, false},
		{"ünïcode", false, false},
		{strings.Repeat("k", 128), true, true},
		{strings.Repeat("k", 129), false, false},
		{strings.Repeat("k/", 128) + "k", false, false}, // 257 characters
	}
	for _, tc := range tests {
		if got := engine.ValidKeyName(tc.name); got != tc.validKey {
			t.Errorf("ValidKeyName(%q) = %v, want %v", tc.name, got, tc.validKey)
		}
		if got := engine.ValidSecretName(tc.name); got != tc.secret {
			t.Errorf("ValidSecretName(%q) = %v, want %v", tc.name, got, tc.secret)
		}
	}
}

func TestZero(t *testing.T) {
	b := []byte("plaintext key")
	engine.Zero(b)
	for i, c := range b {
		if c != 0 {
			t.Fatalf("byte %d = %#x after Zero", i, c)
		}
	}
	engine.Zero(nil) // harmless
}
