package web_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// The node page shows who may sign with each key; only administrators
// list every lease and vouch for an old signer.
func TestCustodyIsVisibleAndOnlyAdministratorsActOnIt(t *testing.T) {
	f := newNodesFixture(t)
	ctx := context.Background()
	alices, bobs := f.node(f.alice.ID), f.node(f.bob.ID)
	now := time.Now().UTC()
	for _, n := range []*engine.Node{alices, bobs} {
		g := engine.LeaseGrant{NodeID: n.ID, KeyName: "priv_validator_key", Holder: engine.LeaseHolder{NodeID: n.ID}, Now: now}
		if _, err := f.store.GrantSigningLease(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	var page struct {
		SigningLeases []struct {
			Key    string `json:"key"`
			Epoch  uint64 `json:"epoch"`
			Holder struct {
				NodeID string `json:"node_id"`
			} `json:"holder"`
		} `json:"signing_leases"`
	}
	f.decode(f.do(request{method: "GET", path: "/api/v1/nodes/" + alices.ID, credential: f.aliceJWT}), 200, &page)
	if len(page.SigningLeases) != 1 || page.SigningLeases[0].Key != "priv_validator_key" || page.SigningLeases[0].Epoch != 1 || page.SigningLeases[0].Holder.NodeID != alices.ID {
		t.Fatalf("the owner's node page shows leases %+v", page.SigningLeases)
	}

	tests := []struct {
		name string
		req  request
		code int
		has  string
	}{
		{"a customer lists no leases", request{method: "GET", path: "/api/v1/admin/signing-leases", credential: f.aliceJWT}, 403, "forbidden"},
		{"an administrator lists every lease", request{method: "GET", path: "/api/v1/admin/signing-leases", credential: f.rootJWT}, 200, bobs.ID},
		{"a bad limit is refused", request{method: "GET", path: "/api/v1/admin/signing-leases?limit=0", credential: f.rootJWT}, 400, "limit"},
		{"a customer cannot vouch for a signer, even of their own node", request{method: "POST", path: "/api/v1/nodes/" + alices.ID + "/migration/confirm-signer-stopped", credential: f.aliceJWT}, 403, "forbidden"},
		{"an administrator vouches, and is named", request{method: "POST", path: "/api/v1/nodes/" + bobs.ID + "/migration/confirm-signer-stopped", credential: f.rootJWT}, 202, f.root.ID},
		{"no such node", request{method: "POST", path: "/api/v1/nodes/node_nope/migration/confirm-signer-stopped", credential: f.rootJWT}, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.has) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tt.code, tt.has)
			}
		})
	}
	f.workflows.mu.Lock()
	confirmed := slices.Clone(f.workflows.confirmed)
	f.workflows.mu.Unlock()
	if want := []string{bobs.ID + ":" + f.root.ID}; !slices.Equal(confirmed, want) {
		t.Errorf("confirmations sent %v, want %v", confirmed, want)
	}
}
