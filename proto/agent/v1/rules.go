package agentv1

import (
	"crypto/x509"
	"net/url"
	"strings"
	"time"
)

// The rules both ends of the protocol apply beyond its messages: the
// gateway (package agent/gateway) and the ops-agent (package agent) share
// them here, so neither imports the other.

// DefaultHeartbeatInterval is how often an agent heartbeats until the
// gateway's HeartbeatResponse says otherwise.
const DefaultHeartbeatInterval = 30 * time.Second

// MaxStatusText bounds each text of a heartbeat's status (the agent
// version, the health message): the gateway keeps no more.
const MaxStatusText = 512

// StatusText is s cut to MaxStatusText bytes.
func StatusText(s string) string {
	if len(s) <= MaxStatusText {
		return s
	}
	return s[:MaxStatusText]
}

// nodeURIScheme is the scheme of the URI SAN naming a node.
const nodeURIScheme = "hoodcloud"

// NodeURI is the URI SAN of a node's client certificate.
func NodeURI(nodeID string) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Host: "node", Path: "/" + nodeID}
}

// NodeIDFromCert returns the node a verified client certificate names: its
// URI SAN and common name must agree.
func NodeIDFromCert(c *x509.Certificate) (string, bool) {
	for _, u := range c.URIs {
		if u.Scheme != nodeURIScheme || u.Host != "node" {
			continue
		}
		id := strings.TrimPrefix(u.Path, "/")
		if id != "" && id == c.Subject.CommonName {
			return id, true
		}
	}
	return "", false
}

// RenewAt is when a certificate of the agent CA is renewed, the agent's
// client certificate as the gateway's server certificate: once 2/3 of its
// lifetime has passed, leaving a third to retry in.
func RenewAt(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}
