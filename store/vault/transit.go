package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hoodcloud/hoodcloud/engine"
)

// keyType is the type of the keys this adapter creates.
const keyType = "aes256-gcm96"

// ciphertextPrefix begins every Transit ciphertext: "vault:v<version>:".
const ciphertextPrefix = "vault:v"

type ciphertextReply struct {
	Data struct {
		Ciphertext string `json:"ciphertext"`
	} `json:"data"`
}

// Encrypt asks Transit to encrypt; Transit creates a missing key itself
// unless its upsert is disabled, in which case the key is created here.
func (s *Secrets) Encrypt(ctx context.Context, key string, plaintext []byte) ([]byte, error) {
	if err := checkKeyName(key); err != nil {
		return nil, err
	}
	body := newBody(base64.StdEncoding.EncodedLen(len(plaintext))).
		base64("plaintext", plaintext).raw("type", strconv.Quote(keyType)).bytes()
	defer engine.Zero(body)
	var reply ciphertextReply
	err := s.withKey(ctx, key, func() error {
		return s.call(ctx, http.MethodPost, s.transit+"encrypt/"+key, body, &reply)
	})
	if err != nil {
		return nil, describe(err, keySubject(key))
	}
	return ciphertextBytes(reply.Data.Ciphertext, key)
}

// Decrypt refuses a ciphertext that is not in canonical form before
// asking Vault, which reads leniently: it takes version 0 for 1 and
// ignores spare base64 bits and line breaks.
func (s *Secrets) Decrypt(ctx context.Context, key string, ciphertext []byte) ([]byte, error) {
	body, version, err := ciphertextBody(key, ciphertext)
	if err != nil {
		return nil, err
	}
	var reply struct {
		Data struct {
			Plaintext []byte `json:"plaintext"` // decoded from base64 by encoding/json
		} `json:"data"`
	}
	err = s.call(ctx, http.MethodPost, s.transit+"decrypt/"+key, body, &reply)
	if err != nil {
		engine.Zero(reply.Data.Plaintext) // a decoding failure may leave part of it
	}
	switch {
	case isStatus(err, http.StatusBadRequest):
		return nil, refused(key, version)
	case err != nil:
		return nil, describe(err, keySubject(key))
	case reply.Data.Plaintext == nil:
		return nil, engine.Errorf(engine.EInternal, "vault decrypted with %s but returned no plaintext", keySubject(key))
	}
	return reply.Data.Plaintext, nil
}

// Rewrap has Transit decrypt and encrypt again inside Vault.
func (s *Secrets) Rewrap(ctx context.Context, key string, ciphertext []byte) ([]byte, error) {
	body, version, err := ciphertextBody(key, ciphertext)
	if err != nil {
		return nil, err
	}
	var reply ciphertextReply
	err = s.call(ctx, http.MethodPost, s.transit+"rewrap/"+key, body, &reply)
	switch {
	case isStatus(err, http.StatusBadRequest):
		return nil, refused(key, version)
	case err != nil:
		return nil, describe(err, keySubject(key))
	}
	return ciphertextBytes(reply.Data.Ciphertext, key)
}

// GenerateDataKey uses Transit's datakey endpoint, which does not create
// a missing key: it is created here first.
func (s *Secrets) GenerateDataKey(ctx context.Context, key string) (plaintext, wrapped []byte, err error) {
	if err := checkKeyName(key); err != nil {
		return nil, nil, err
	}
	body := newBody(0).raw("bits", strconv.Itoa(8*engine.DataKeySize)).bytes()
	var reply struct {
		Data struct {
			Plaintext  []byte `json:"plaintext"` // decoded from base64 by encoding/json
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	err = s.withKey(ctx, key, func() error {
		return s.call(ctx, http.MethodPost, s.transit+"datakey/plaintext/"+key, body, &reply)
	})
	if err != nil {
		engine.Zero(reply.Data.Plaintext) // a decoding failure may leave part of it
		return nil, nil, describe(err, keySubject(key))
	}
	if len(reply.Data.Plaintext) != engine.DataKeySize {
		engine.Zero(reply.Data.Plaintext)
		return nil, nil, engine.Errorf(engine.EInternal, "vault returned a data key of %d bytes, want %d", len(reply.Data.Plaintext), engine.DataKeySize)
	}
	wrapped, err = ciphertextBytes(reply.Data.Ciphertext, key)
	if err != nil {
		engine.Zero(reply.Data.Plaintext)
		return nil, nil, err
	}
	return reply.Data.Plaintext, wrapped, nil
}

// withKey runs op and, if Vault refused it because the key does not exist,
// creates the key and runs op once more.
func (s *Secrets) withKey(ctx context.Context, key string, op func() error) error {
	err := op()
	if !isStatus(err, http.StatusBadRequest) {
		return err
	}
	if _, ierr := s.KeyInfo(ctx, key); !engine.IsCode(ierr, engine.ENotFound) {
		return err
	}
	body := newBody(0).raw("type", strconv.Quote(keyType)).bytes()
	if cerr := s.call(ctx, http.MethodPost, s.transit+"keys/"+key, body, nil); cerr != nil {
		return cerr
	}
	return op()
}

// RotateKey adds a key version. Transit answers an unknown key with 400,
// so KeyInfo tells that case apart.
func (s *Secrets) RotateKey(ctx context.Context, key string) (int, error) {
	if err := checkKeyName(key); err != nil {
		return 0, err
	}
	var reply struct {
		Data struct {
			LatestVersion int `json:"latest_version"`
		} `json:"data"`
	}
	err := s.call(ctx, http.MethodPost, s.transit+"keys/"+key+"/rotate", nil, &reply)
	if isStatus(err, http.StatusBadRequest) {
		if _, ierr := s.KeyInfo(ctx, key); ierr != nil {
			return 0, ierr
		}
	}
	if err != nil {
		return 0, describe(err, keySubject(key))
	}
	if reply.Data.LatestVersion > 0 {
		return reply.Data.LatestVersion, nil
	}
	info, err := s.KeyInfo(ctx, key) // Vault before 1.12 answers rotation with no body
	if err != nil {
		return 0, err
	}
	return info.Latest, nil
}

// SetMinDecryptionVersion refuses versions below 1 itself: Transit would
// silently take 0 for 1.
func (s *Secrets) SetMinDecryptionVersion(ctx context.Context, key string, version int) error {
	if err := checkKeyName(key); err != nil {
		return err
	}
	if version < 1 {
		return engine.Errorf(engine.EInvalid, "min decryption version %d of %s is below 1", version, keySubject(key))
	}
	body := newBody(0).raw("min_decryption_version", strconv.Itoa(version)).bytes()
	err := s.call(ctx, http.MethodPost, s.transit+"keys/"+key+"/config", body, nil)
	if !isStatus(err, http.StatusBadRequest) {
		return describe(err, keySubject(key))
	}
	info, ierr := s.KeyInfo(ctx, key)
	if ierr != nil {
		return ierr
	}
	return engine.Errorf(engine.EInvalid, "min decryption version %d of %s is outside 1..%d", version, keySubject(key), info.Latest)
}

// KeyInfo reads the key's versions.
func (s *Secrets) KeyInfo(ctx context.Context, key string) (*engine.KeyInfo, error) {
	if err := checkKeyName(key); err != nil {
		return nil, err
	}
	var reply struct {
		Data struct {
			LatestVersion        int `json:"latest_version"`
			MinDecryptionVersion int `json:"min_decryption_version"`
		} `json:"data"`
	}
	if err := s.call(ctx, http.MethodGet, s.transit+"keys/"+key, nil, &reply); err != nil {
		return nil, describe(err, keySubject(key))
	}
	return &engine.KeyInfo{
		Name:          key,
		Latest:        reply.Data.LatestVersion,
		MinDecryption: max(reply.Data.MinDecryptionVersion, 1), // keys of Vault 0.x say 0
	}, nil
}

// ciphertextBody checks the names and the form of a ciphertext and builds
// the request that carries it.
func ciphertextBody(key string, ciphertext []byte) (body []byte, version int, err error) {
	if err := checkKeyName(key); err != nil {
		return nil, 0, err
	}
	version, ok := parseCiphertext(ciphertext)
	if !ok {
		return nil, 0, engine.Errorf(engine.EInvalid, "malformed ciphertext for %s", keySubject(key))
	}
	return newBody(len(ciphertext)).text("ciphertext", ciphertext).bytes(), version, nil
}

// parseCiphertext accepts only what Transit itself writes:
// "vault:v<version>:<base64>" with a version of 1 or more without leading
// zeros and canonical, padded standard base64.
func parseCiphertext(ct []byte) (version int, ok bool) {
	rest, found := bytes.CutPrefix(ct, []byte(ciphertextPrefix))
	if !found {
		return 0, false
	}
	digits, payload, found := bytes.Cut(rest, []byte{':'})
	if !found || len(digits) == 0 || len(digits) > 9 || digits[0] == '0' {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	version, _ = strconv.Atoi(string(digits))
	return version, canonicalBase64(payload)
}

// canonicalBase64 refuses what Go's decoder tolerates: line breaks.
// Strict refuses nonzero spare bits.
func canonicalBase64(b []byte) bool {
	if len(b) == 0 || len(b)%4 != 0 {
		return false
	}
	for _, c := range b {
		if c == '\r' || c == '\n' {
			return false
		}
	}
	_, err := base64.StdEncoding.Strict().Decode(make([]byte, base64.StdEncoding.DecodedLen(len(b))), b)
	return err == nil
}

func ciphertextBytes(ct, key string) ([]byte, error) {
	if _, ok := parseCiphertext([]byte(ct)); !ok {
		return nil, engine.Errorf(engine.EInternal, "vault returned no usable ciphertext for %s", keySubject(key))
	}
	return []byte(ct), nil
}

// refused is the error for a ciphertext Transit will not open: the
// message names the key and the version only.
func refused(key string, version int) error {
	return engine.Errorf(engine.EInvalid, "%s cannot open this ciphertext of version %d (tampered, another key's, or a version it does not have or no longer decrypts)", keySubject(key), version)
}

func checkKeyName(key string) error {
	if !engine.ValidKeyName(key) {
		return engine.Errorf(engine.EInvalid, "invalid key name %q", key)
	}
	return nil
}

func keySubject(key string) string { return fmt.Sprintf("key %q", key) }
