package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Custody on the API: each node shows who may sign with its keys and how
// its last migration went; administrators list every lease and vouch for
// an old signer an unreachable host cannot confirm stopped.

// maxLeasePage bounds the admin listing.
const maxLeasePage = 1000

func (s *Server) routeCustody(_, authed *gin.RouterGroup) {
	if s.cfg.Store == nil {
		return
	}
	admin := requireScope(engine.ScopeAdmin)
	authed.GET("/admin/signing-leases", admin, s.listSigningLeases)
	authed.POST("/nodes/:id/migration/confirm-signer-stopped", admin, s.confirmSignerStopped)
}

// signingLeaseJSON is a key's lease: who may sign with it, since when.
type signingLeaseJSON struct {
	NodeID string `json:"node_id"`
	Key    string `json:"key"`
	Holder struct {
		NodeID string `json:"node_id"`
		// The host of the node that holds it: "" for the node's first.
		Incarnation string `json:"incarnation"`
	} `json:"holder"`
	Epoch         uint64    `json:"epoch"`
	Since         time.Time `json:"since"`
	ReleasedAt    time.Time `json:"released_at,omitzero"` // the holder no longer signs
	ReleaseReason string    `json:"release_reason,omitempty"`
}

func toLeaseJSON(l *engine.SigningLease) signingLeaseJSON {
	j := signingLeaseJSON{NodeID: l.NodeID, Key: l.KeyName, Epoch: l.Epoch, Since: l.GrantedAt, ReleasedAt: l.ReleasedAt, ReleaseReason: l.ReleaseReason}
	j.Holder.NodeID, j.Holder.Incarnation = l.Holder.NodeID, l.Holder.Incarnation
	return j
}

func leasesJSON(ls []*engine.SigningLease) []signingLeaseJSON {
	out := make([]signingLeaseJSON, 0, len(ls))
	for _, l := range ls {
		out = append(out, toLeaseJSON(l))
	}
	return out
}

func (s *Server) listSigningLeases(c *gin.Context) {
	limit := maxLeasePage
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxLeasePage {
			writeError(c, engine.Errorf(engine.EInvalid, "limit must be a number from 1 to %d", maxLeasePage))
			return
		}
		limit = n
	}
	ls, err := s.cfg.Store.ListAllSigningLeases(c.Request.Context(), limit)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"signing_leases": leasesJSON(ls)})
}

// confirmSignerStopped: an administrator vouches that the old host of a
// migrating node no longer signs; the migration records who did.
func (s *Server) confirmSignerStopped(c *gin.Context) {
	if s.cfg.Workflows == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "the workflow engine is not configured"))
		return
	}
	n, err := s.visibleNode(c)
	if err == nil {
		err = s.cfg.Workflows.ConfirmSignerStopped(c.Request.Context(), n.ID, principal(c).UserID)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"node_id": n.ID, "confirmed_by": principal(c).UserID})
}
