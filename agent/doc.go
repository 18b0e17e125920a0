// Package agent is the ops-agent: the program on every node host that
// enrols with the appliance's gateway, heartbeats, and runs the commands it
// hands out (configure, start, stop, upgrade, capture and deliver keys,
// snapshot and restore the chain data) through a runtime (process,
// systemd or docker) while it watches the chain's metrics. Its binary is
// cmd/hoodcloud-agent; `hoodcloud agent` runs the same code.
//
// The other end of the wire, the gateway, is package agent/gateway. The two
// share only the protocol, proto/agent/v1, so that the ops-agent links
// nothing of the control plane.
package agent
