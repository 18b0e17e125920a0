package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/status"
)

// Delivered keys arrive sealed under the node's data key (DEK), which the
// agent fetches for the DELIVER_KEYS command only, as for CAPTURE_KEY.
// They are written before CONFIGURE runs (an init step such as `cometbft
// init` must find the customer's key), so nothing here needs a configured
// runtime: only the chain data dir.

// deliverKeys runs DELIVER_KEYS command id: the payload is checked before
// the data key is asked for, and the key zeroed once the files are written.
func (a *opsAgent) deliverKeys(ctx context.Context, id string, p *agentv1.DeliverKeysPayload) error {
	if err := checkDeliveredKeys(p.GetKeys()); err != nil {
		return err
	}
	dek, err := a.fetchDataKey(ctx, id)
	if err != nil {
		return err
	}
	defer engine.Zero(dek)
	if err := DeliverKeys(a.cfg.ChainDir, p.GetKeys(), dek); err != nil {
		return err
	}
	a.cfg.Logger.Info("keys delivered", "command_id", id, "keys", len(p.GetKeys()))
	return nil
}

// fetchDataKey asks the gateway for the node's data key for command id.
// A gateway that is away (the appliance restarting) is asked again with
// backoff for up to dataKeyPatience: the command would otherwise fail for
// good over a moment's outage. The key is the caller's to zero.
func (a *opsAgent) fetchDataKey(ctx context.Context, id string) ([]byte, error) {
	deadline := time.Now().Add(dataKeyPatience)
	for failures := 0; ; failures++ {
		resp, err := a.askDataKey(ctx, id)
		switch {
		case err == nil:
			return resp.GetDataKey(), nil
		case permanentRPCError(err):
			return nil, permanent("fetch the node's data key: " + status.Convert(err).Message())
		case time.Now().After(deadline):
			return nil, fmt.Errorf("fetch the node's data key: %w", err)
		}
		a.cfg.Logger.Warn("data key not fetched, asking again", "command_id", id, "code", status.Code(err).String())
		if !sleep(ctx, BackoffDelay(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures)) {
			return nil, ctx.Err()
		}
	}
}

// askDataKey is one bounded FetchDataKey call: a call that never returns
// (a stream lost with the appliance) is asked again, not waited on forever.
func (a *opsAgent) askDataKey(ctx context.Context, id string) (*agentv1.FetchDataKeyResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return a.gw.rpc().FetchDataKey(cctx, &agentv1.FetchDataKeyRequest{NodeId: a.cfg.NodeID, CommandId: id})
}

// dataKeyPatience is how long a command waits for the gateway to hand out
// the node's data key.
const dataKeyPatience = 2 * time.Minute

func checkDeliveredKeys(keys []*agentv1.DeliveredKey) error {
	if len(keys) == 0 {
		return permanent("the payload delivers no key")
	}
	for _, k := range keys {
		if !engine.ValidKeyName(k.GetName()) {
			return permanent(fmt.Sprintf("key name %q is not valid", agentv1.StatusText(k.GetName())))
		}
		if err := chainPath(fmt.Sprintf("key %q at", k.GetName()), k.GetPath()); err != nil {
			return err
		}
	}
	return nil
}

// DeliverKeys opens each key under dek and writes it at its path in
// chainDir, mode 0600 in directories made 0700, through os.Root so neither
// `..` nor a symlink leads out. A key whose file already holds it is left
// as it is (but made 0600), so delivering again changes nothing. Every
// plaintext is zeroed; errors name the key and its path, never content.
func DeliverKeys(chainDir string, keys []*agentv1.DeliveredKey, dek []byte) error {
	if err := checkDeliveredKeys(keys); err != nil {
		return err
	}
	if err := os.MkdirAll(chainDir, 0o700); err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	root, err := os.OpenRoot(chainDir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	for _, k := range keys {
		if err := deliverKey(root, k, dek); err != nil {
			return err
		}
	}
	return nil
}

func deliverKey(root *os.Root, k *agentv1.DeliveredKey, dek []byte) error {
	what := fmt.Sprintf("key %q at %q", k.GetName(), k.GetPath())
	plain, err := engine.OpenWithDataKey(dek, k.GetEncryptedKey())
	if err != nil {
		return permanent(what + " does not open under the node's data key")
	}
	defer engine.Zero(plain)
	if holdsKey(root, k.GetPath(), plain) {
		if err := root.Chmod(k.GetPath(), 0o600); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := writeInRoot(root, k.GetPath(), plain, 0o600); err != nil {
		return permanent(fmt.Sprintf("%s: cannot be written: %v", what, err))
	}
	return nil
}

// holdsKey reports whether the regular file at path holds exactly plain.
func holdsKey(root *os.Root, path string, plain []byte) bool {
	fi, err := root.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(plain)) {
		return false
	}
	got, err := root.ReadFile(path)
	defer engine.Zero(got)
	return err == nil && bytes.Equal(got, plain)
}
