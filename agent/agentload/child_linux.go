package agentload

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the gateway process if the benchmark dies first.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
