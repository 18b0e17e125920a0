package vault

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/hoodcloud/hoodcloud/engine"
)

// A secret is stored in KV as one field, valueField, holding its bytes in
// standard base64 so that any value round-trips. An operator seeds one
// with `vault kv put <mount>/<prefix>/<name> value=<base64>`.
const valueField = "value"

// Get reads the latest version of the secret.
func (s *Secrets) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkSecretName(name); err != nil {
		return nil, err
	}
	var reply struct {
		Data struct {
			Data struct {
				Value []byte `json:"value"` // decoded from base64 by encoding/json
			} `json:"data"`
		} `json:"data"`
	}
	if err := s.call(ctx, http.MethodGet, s.kvData+name, nil, &reply); err != nil {
		engine.Zero(reply.Data.Data.Value) // a decoding failure may leave part of it
		return nil, describe(err, secretSubject(name))
	}
	if reply.Data.Data.Value == nil {
		return nil, engine.Errorf(engine.EInternal, "%s in vault has no %q field", secretSubject(name), valueField)
	}
	return reply.Data.Data.Value, nil
}

// Put writes a new version of the secret. KV keeps the mount's
// max_versions older versions until Delete.
func (s *Secrets) Put(ctx context.Context, name string, value []byte) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	body := secretBody(value, false)
	defer engine.Zero(body)
	return describe(s.call(ctx, http.MethodPost, s.kvData+name, body, nil), secretSubject(name))
}

// Create writes version 1 with check-and-set 0, which KV refuses, under its
// per-key lock, when any version exists.
func (s *Secrets) Create(ctx context.Context, name string, value []byte) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	body := secretBody(value, true)
	defer engine.Zero(body)
	err := s.call(ctx, http.MethodPost, s.kvData+name, body, nil)
	if isStatus(err, http.StatusBadRequest) && vaultSays(err, "check-and-set") {
		return engine.Errorf(engine.EConflict, "%s exists already", secretSubject(name))
	}
	return describe(err, secretSubject(name))
}

// Delete removes the secret's metadata and every version, so that nothing
// of it stays readable and Create may make it again.
func (s *Secrets) Delete(ctx context.Context, name string) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	err := s.call(ctx, http.MethodDelete, s.kvMeta+name, nil, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return describe(err, secretSubject(name))
}

func secretBody(value []byte, createOnly bool) []byte {
	b := newBody(base64.StdEncoding.EncodedLen(len(value)))
	if createOnly {
		b.object("options").raw("cas", "0").end()
	}
	return b.object("data").base64(valueField, value).end().bytes()
}

func checkSecretName(name string) error {
	if !engine.ValidSecretName(name) {
		return engine.Errorf(engine.EInvalid, "invalid secret name %q", name)
	}
	return nil
}

func secretSubject(name string) string { return fmt.Sprintf("secret %q", name) }
