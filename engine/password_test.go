package engine_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

var cheap = engine.PasswordParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHashIsPHCArgon2id(t *testing.T) {
	h, err := cheap.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("hash %q is not PHC argon2id", h)
	}
	again, _ := cheap.HashPassword("correct horse battery")
	if again == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		if ok, err := engine.VerifyPassword(h, pw); err != nil || ok != want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
}

func TestPasswordHashKeepsItsOwnCosts(t *testing.T) {
	costlier := cheap
	costlier.Memory, costlier.Time = 2048, 2
	h, _ := costlier.HashPassword("old password!")
	if !strings.Contains(h, "$m=2048,t=2,p=1$") {
		t.Fatalf("hash %q does not record its costs", h)
	}
	if ok, err := engine.VerifyPassword(h, "old password!"); !ok || err != nil {
		t.Fatalf("old hash no longer verifies: %v %v", ok, err)
	}
}

func TestUnreadablePasswordHashes(t *testing.T) {
	good, _ := cheap.HashPassword("whatever123")
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for name, h := range map[string]string{
		"empty":             "",
		"argon2i":           "$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"old version":       "$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + key,
		"missing part":      "$argon2id$v=19$m=1024,t=1,p=1$" + salt,
		"bad base64":        "$argon2id$v=19$m=1024,t=1,p=1$!!!$" + key,
		"a terabyte":        "$argon2id$v=19$m=1073741824,t=1,p=1$" + salt + "$" + key,
		"zero passes":       "$argon2id$v=19$m=1024,t=0,p=1$" + salt + "$" + key,
		"a thousand passes": "$argon2id$v=19$m=1024,t=1000,p=1$" + salt + "$" + key,
		"short key":         "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$AAAA",
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := engine.VerifyPassword(h, "whatever123")
			if ok || !engine.IsCode(err, engine.EInternal) {
				t.Fatalf("VerifyPassword = %v, %v; want an internal error", ok, err)
			}
			if strings.Contains(err.Error(), salt) {
				t.Fatal("the error repeats the hash")
			}
		})
	}
}
