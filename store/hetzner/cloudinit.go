package hetzner

import (
	"encoding/pem"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"gopkg.in/yaml.v3"
)

// Where cloud-init puts the agent's files on the host.
const (
	caFile       = "/etc/hoodcloud/agent-ca.pem"
	tokenFile    = "/etc/hoodcloud/agent.env" // 0600: holds the enrollment token
	installFile  = "/usr/local/lib/hoodcloud/install-agent.sh"
	unitFile     = "/etc/systemd/system/hoodcloud-agent.service"
	agentBinary  = "/usr/local/bin/hoodcloud-agent"
	agentDataDir = "/var/lib/hoodcloud-agent"
	// tokenVar names the token in the env file.
	tokenVar = "HOODCLOUD_AGENT_TOKEN" // what hoodcloud-agent reads
)

// maxUserData is Hetzner's limit on user_data.
const maxUserData = 32 << 10

var (
	sha256Hex  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tokenChars = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,512}$`)
	// urlChars keeps the download URL safe inside single quotes in sh.
	urlChars     = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$`)
	gatewayChars = regexp.MustCompile(`^[A-Za-z0-9.:\[\]-]+$`)
)

type cloudConfig struct {
	WriteFiles []cloudFile `yaml:"write_files"`
	RunCmd     [][]string  `yaml:"runcmd"`
}

type cloudFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

// cloudInit renders the user data that turns a fresh Ubuntu server into a
// node host: the CA certificate, the enrollment token in a 0600 env file,
// a script that downloads the ops-agent (hoodcloud-agent, which the
// appliance serves), refuses it unless its SHA-256 matches, installs it and
// starts the agent's systemd unit. Every value is checked first, so none
// can escape into YAML, sh or the unit.
func cloudInit(nodeID string, b engine.HostBootstrap) (string, error) {
	if err := checkBootstrap(b); err != nil {
		return "", err
	}
	cfg := cloudConfig{
		WriteFiles: []cloudFile{
			{Path: caFile, Owner: "root:root", Permissions: "0644", Content: string(b.CACertPEM)},
			{Path: tokenFile, Owner: "root:root", Permissions: "0600", Content: tokenVar + "=" + b.EnrollmentToken + "\n"},
			{Path: unitFile, Owner: "root:root", Permissions: "0644", Content: agentUnit(nodeID, b.GatewayAddr)},
			{Path: installFile, Owner: "root:root", Permissions: "0700", Content: installScript(b.AgentURL, b.AgentSHA256)},
		},
		RunCmd: [][]string{{"/bin/sh", installFile}},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", engine.Errorf(engine.EInternal, "render cloud-init")
	}
	userData := "#cloud-config\n" + string(out)
	if len(userData) > maxUserData {
		return "", engine.Errorf(engine.EInvalid, "cloud-init is %d bytes, hetzner takes at most %d", len(userData), maxUserData)
	}
	return userData, nil
}

// checkBootstrap refuses values that could break out of their place in the
// user data. Messages never quote the token.
func checkBootstrap(b engine.HostBootstrap) error {
	u, err := url.Parse(b.AgentURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !urlChars.MatchString(b.AgentURL) || strings.Contains(b.AgentURL, "'"):
		return engine.Errorf(engine.EInvalid, "the agent download url must be a plain http(s) url")
	case !sha256Hex.MatchString(b.AgentSHA256):
		return engine.Errorf(engine.EInvalid, "the agent sha256 must be 64 lower-case hex digits")
	case !validGateway(b.GatewayAddr):
		return engine.Errorf(engine.EInvalid, "the gateway address must be host:port")
	case !tokenChars.MatchString(b.EnrollmentToken):
		return engine.Errorf(engine.EInvalid, "the enrollment token must be 16 to 512 characters of [A-Za-z0-9._~+/=-]")
	}
	return checkCACert(b.CACertPEM)
}

func validGateway(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != "" && gatewayChars.MatchString(addr)
}

// checkCACert accepts only PEM certificates: a private key pasted by
// mistake must never be shipped to a host.
func checkCACert(data []byte) error {
	found := false
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			if strings.TrimSpace(string(rest)) != "" {
				return engine.Errorf(engine.EInvalid, "the CA certificate has text outside its PEM blocks")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return engine.Errorf(engine.EInvalid, "the CA certificate PEM holds a %s block; only certificates are allowed", block.Type)
		}
		found = true
	}
	if !found {
		return engine.Errorf(engine.EInvalid, "the CA certificate is not PEM")
	}
	return nil
}

// agentUnit is the systemd unit of the ops-agent. The token reaches the
// agent through a 0600 environment file, never its command line (ps).
func agentUnit(nodeID, gateway string) string {
	return `[Unit]
Description=HoodCloud ops-agent
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=` + tokenFile + `
ExecStart=` + agentBinary + ` --gateway ` + gateway + ` --node-id ` + nodeID +
		` --ca-file ` + caFile + ` --data-dir ` + agentDataDir + `
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`
}

// installScript downloads the binary, checks its SHA-256 before anything
// runs it, installs it and starts the agent; set -e stops at the first
// failure, so a wrong checksum leaves nothing installed.
func installScript(agentURL, sum string) string {
	return `#!/bin/sh
set -eu
tmp="$(mktemp ` + agentBinary + `.XXXXXX)"
trap 'rm -f "$tmp"' EXIT
curl --fail --silent --show-error --location --proto '=https,http' --retry 10 --retry-delay 3 --output "$tmp" '` + agentURL + `'
echo "` + sum + `  $tmp" | sha256sum --check --strict -
chmod 0755 "$tmp"
mv -f "$tmp" ` + agentBinary + `
mkdir -p -m 0700 ` + agentDataDir + `
systemctl daemon-reload
systemctl enable --now hoodcloud-agent.service
`
}
