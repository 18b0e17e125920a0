package main

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoodcloud/hoodcloud/store/local"
)

// Where node hosts find the appliance: the gateway they dial, the URL they
// download the ops-agent from, and the binary behind that URL. Local hosts
// share the appliance's machine and dial the gateway where it listens;
// hosts a remote provisioner creates need addresses they can reach.

// remoteHosts says whether the provisioner creates hosts on other machines.
func (c *Config) remoteHosts() bool { return c.Provisioner != "local" }

// agentBinaryPath is the ops-agent the appliance hands out and local hosts
// run: agent-binary, else hoodcloud-agent beside this executable.
func (c *Config) agentBinaryPath() string {
	if c.AgentBinary != "" {
		return c.AgentBinary
	}
	exe, err := os.Executable()
	if err != nil {
		return local.AgentBinaryName // reported missing, with this name
	}
	return filepath.Join(filepath.Dir(exe), local.AgentBinaryName)
}

// agentPublicAddr is the gateway address hosts dial: agent-public-addr,
// else bound (where the gateway listens) unless that is a wildcard; ""
// when neither says.
func (c *Config) agentPublicAddr(bound string) string {
	if c.AgentPublicAddr != "" {
		return c.AgentPublicAddr
	}
	if isWildcard(bound) {
		return ""
	}
	return bound
}

// publicURL is how hosts reach the HTTP API: public-url, else the scheme
// the API serves with the first TLS domain or http-addr's host (unless it
// is a wildcard); "" when neither says.
func (c *Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	switch {
	case err != nil:
		return ""
	case len(c.TLSDomains) > 0:
		host = c.TLSDomains[0]
	case isWildcard(c.HTTPAddr):
		return ""
	}
	scheme := "http"
	if c.servesTLS() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// isWildcard says whether addr binds every interface (0.0.0.0, ::, or no
// host), which names no address to dial.
func isWildcard(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// isLoopback says whether addr's host is this machine only.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// checkPublicAddrs checks public-url and agent-public-addr when given, and
// that a remote provisioner's hosts get addresses they can reach.
func (c *Config) checkPublicAddrs() error {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return configErrorf("public-url: want an http(s) URL with a host and nothing after the path, got %q", c.PublicURL)
		}
	}
	if c.AgentPublicAddr != "" {
		if err := checkAddr("agent-public-addr", c.AgentPublicAddr); err != nil {
			return err
		}
	}
	if !c.remoteHosts() {
		return nil
	}
	if err := c.checkRemoteGateway(); err != nil {
		return err
	}
	return c.checkRemotePublicURL()
}

func (c *Config) checkRemoteGateway() error {
	addr := c.agentPublicAddr(c.AgentAddr)
	host, _, _ := net.SplitHostPort(addr)
	switch {
	case addr == "" || isWildcard(addr):
		return configErrorf("agent-public-addr: required with provisioner %s: agent-addr %s binds every interface and names none that hosts can dial", c.Provisioner, c.AgentAddr)
	case isLoopback(host):
		return configErrorf("agent-public-addr: %s hosts cannot dial the loopback address %s; set the gateway address they dial", c.Provisioner, addr)
	}
	return nil
}

func (c *Config) checkRemotePublicURL() error {
	pub := c.publicURL()
	if pub == "" {
		return configErrorf("public-url: required with provisioner %s: hosts download the ops-agent from it, and http-addr %s binds every interface", c.Provisioner, c.HTTPAddr)
	}
	if u, err := url.Parse(pub); err == nil && isLoopback(u.Hostname()) {
		return configErrorf("public-url: %s hosts cannot reach the loopback URL %s; set the URL they reach the API by", c.Provisioner, pub)
	}
	return nil
}
