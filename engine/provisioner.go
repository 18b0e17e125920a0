package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Labels every provisioner puts on the hosts it creates, so that a reaper can
// find the hosts no node owns any more (ListHosts, ReapHosts).
const (
	// LabelNodeID holds the id of the node the host runs.
	LabelNodeID = "hoodcloud-node-id"
	// LabelManaged is LabelManagedValue on every host HoodCloud created.
	LabelManaged      = "hoodcloud-managed"
	LabelManagedValue = "true"
	// LabelInstallation holds the id of the appliance installation that
	// created the host, so that two appliances sharing a cloud project never
	// list, or reap, each other's hosts.
	LabelInstallation = "hoodcloud-installation"
	// LabelIncarnation holds HostSpec.Incarnation on every host but a
	// node's first.
	LabelIncarnation = "hoodcloud-incarnation"
)

// ValidIncarnation reports whether inc can tell a node's hosts apart: empty,
// or 1 to 16 lower-case letters and digits, so that it fits every
// provider's host names and labels.
func ValidIncarnation(inc string) bool {
	if len(inc) > 16 {
		return false
	}
	for i := range len(inc) {
		if c := inc[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// HostBootstrap is what a new host needs to fetch, start and enrol its
// ops-agent. EnrollmentToken is a secret: String, GoString and LogValue
// hide it, and no provisioner logs it or puts it in an error. JSON encoding
// does not hide it: keep a HostSpec out of workflow inputs (Temporal stores
// them in its history) and fill the token inside the activity.
type HostBootstrap struct {
	// AgentURL is where the host downloads the ops-agent binary,
	// hoodcloud-agent (http or https: AgentSHA256 guards its integrity
	// either way).
	AgentURL string
	// AgentSHA256 is the hex SHA-256 of that binary: the host refuses any
	// other file.
	AgentSHA256 string
	// GatewayAddr is the host:port of the agent gateway, as the host dials it.
	GatewayAddr string
	// CACertPEM is the appliance agent CA certificate the agent trusts.
	CACertPEM []byte
	// EnrollmentToken is the one-time token the agent enrols with. Secret.
	EnrollmentToken string
}

func (b HostBootstrap) String() string {
	return fmt.Sprintf("{AgentURL:%s AgentSHA256:%s GatewayAddr:%s CACertPEM:%d bytes EnrollmentToken:[redacted]}",
		b.AgentURL, b.AgentSHA256, b.GatewayAddr, len(b.CACertPEM))
}

func (b HostBootstrap) GoString() string { return "engine.HostBootstrap" + b.String() }

func (b HostBootstrap) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("agent_url", b.AgentURL),
		slog.String("agent_sha256", b.AgentSHA256),
		slog.String("gateway", b.GatewayAddr),
	)
}

// HostSpec asks a provisioner for the host of one node.
type HostSpec struct {
	NodeID string // required; becomes the LabelNodeID label
	// Incarnation tells hosts of the same node apart: empty for the node's
	// first host; a migration names the new host it wants, so that the
	// node can hold two hosts while it moves. See ValidIncarnation.
	Incarnation  string
	Provider     string // the provisioner's name ("local", "hetzner"); empty: any
	Region       string // provider region or location, e.g. "fsn1"; empty: the provider's choice
	InstanceType string // provider machine type, e.g. "cx22"
	Bootstrap    HostBootstrap
	// Labels are extra labels for the host. The provisioner adds LabelNodeID,
	// LabelManaged and LabelInstallation, which override any given here.
	Labels map[string]string
}

// LogValue keeps the bootstrap's token out of logs whatever the handler.
func (s HostSpec) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("node_id", s.NodeID),
		slog.String("incarnation", s.Incarnation),
		slog.String("provider", s.Provider),
		slog.String("region", s.Region),
		slog.String("instance_type", s.InstanceType),
		slog.Any("bootstrap", s.Bootstrap),
	)
}

// HostPhase is where a host is in its own lifecycle, as its provider says.
type HostPhase string

const (
	HostStarting HostPhase = "starting" // being created or booting
	HostRunning  HostPhase = "running"
	HostStopped  HostPhase = "stopped"  // exists but is off
	HostDeleting HostPhase = "deleting" // being destroyed
	HostUnknown  HostPhase = "unknown"  // a state the adapter does not know
)

// HostStatus is what DescribeHost reports.
type HostStatus struct {
	Host      Host
	Phase     HostPhase
	NodeID    string // its LabelNodeID label
	CreatedAt time.Time
}

// ManagedHost is a host ListHosts found: one HoodCloud created.
type ManagedHost struct {
	Host      Host
	NodeID    string // its LabelNodeID label; empty if the label is missing
	CreatedAt time.Time
}

// Provisioner creates and destroys the machines nodes run on. Adapters:
// local processes (the default) and Hetzner Cloud. Every method may be
// retried: workflow activities run at least once. Safe for concurrent use.
// Errors are domain errors: EInvalid for a request the provider refuses as
// malformed, EUnavailable when the provider cannot be reached, rate-limits
// us or rejects our credentials (an operator must act; a retry may succeed).
type Provisioner interface {
	// CreateHost creates the host of spec.NodeID and spec.Incarnation,
	// boots it with spec.Bootstrap and returns it once the provider reports
	// it created (the agent enrols later, on its own). Idempotent: if the
	// node already has a host of that incarnation (found by its LabelNodeID
	// and LabelIncarnation labels), that host is returned and nothing is
	// created. Returns EInvalid for a spec it cannot satisfy (no
	// node id, an unknown provider, a malformed bootstrap), EConflict if a
	// machine with the node's host name exists without HoodCloud's labels.
	CreateHost(ctx context.Context, spec HostSpec) (Host, error)
	// DestroyHost destroys h. Idempotent: a host that is already gone, or a
	// Host without a ProviderID, is not an error. It returns once the
	// provider accepted the deletion; DescribeHost tells when it is gone.
	// Returns EInvalid for a host of another provider.
	DestroyHost(ctx context.Context, h Host) error
	// DescribeHost reports h's current status. Returns ENotFound if the
	// host does not exist (any more).
	DescribeHost(ctx context.Context, h Host) (HostStatus, error)
	// ListHosts returns every host this installation created (LabelManaged
	// and this installation's LabelInstallation) that still exists, for the
	// reaper. Order is unspecified.
	ListHosts(ctx context.Context) ([]ManagedHost, error)
}
