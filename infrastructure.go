package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	hnats "github.com/hoodcloud/hoodcloud/store/nats"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/store/secrets"
	"github.com/hoodcloud/hoodcloud/store/temporal/devserver"
	"github.com/hoodcloud/hoodcloud/store/vault"
)

// The infrastructure the appliance stands on: the data dir, store, keys,
// cache, message bus and workflow engine, embedded or external by URL.

// openDataDir creates the data dir and locks it: two appliances on one
// data dir would corrupt each other's files.
func (m *Main) openDataDir(context.Context) error {
	dir := m.Config.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data dir %s is in use by another hoodcloud process", dir)
	}
	m.onClose(func(context.Context) error { return f.Close() })
	return nil
}

// opener is the lifecycle every adapter shares.
type opener interface {
	Open(context.Context) error
	Close() error
}

// openStore picks the adapter by URL scheme: bbolt under the data dir by
// default, PostgreSQL when configured.
func (m *Main) openStore(ctx context.Context) error {
	var s interface {
		engine.Store
		opener
	}
	if isPostgres(m.Config.Store) {
		s = postgres.New(m.Config.Store, m.Registry)
	} else {
		s = bolt.New(m.Config.storePath())
	}
	if err := s.Open(ctx); err != nil {
		return err
	}
	m.Store = s
	m.onClose(func(context.Context) error { return s.Close() })
	m.addCheck("store", true, s.Ping)
	return nil
}

// openSecrets opens the local keyring on the Store, or Vault, and makes or
// loads the first-boot material.
func (m *Main) openSecrets(ctx context.Context) error {
	backend, err := m.secretsBackend(ctx)
	if err != nil {
		return err
	}
	m.Secrets = backend
	m.onClose(func(context.Context) error { return backend.Close() })
	m.addCheck("secrets", true, backend.Ping)
	boot, err := keys.NewBoot(keys.BootConfig{Secrets: backend})
	if err != nil {
		return err
	}
	// Generating the RSA key takes a while on a first boot: it overlaps
	// with the start of the workflow engine and is awaited after it.
	done := make(chan struct{})
	m.bootDone = done
	go func() {
		defer close(done)
		m.Boot, m.bootErr = boot.Ensure(ctx)
	}()
	// Runs before backend.Close: never close the keyring under the generator.
	m.onClose(func(context.Context) error { <-done; return nil })
	return nil
}

// secretsBackend opens the configured Secrets adapter.
func (m *Main) secretsBackend(ctx context.Context) (engine.Secrets, error) {
	if m.Config.Secrets != "embedded" {
		opts, err := vault.ParseURL(m.Config.Secrets)
		if err != nil {
			return nil, err
		}
		opts.Logger = m.Logger.With("component", "vault")
		return vault.Open(ctx, opts)
	}
	keys := secrets.New(m.Store, secrets.Options{
		DataDir:       m.Config.DataDir,
		MasterKeyFile: m.Config.MasterKeyFile,
		MasterKey:     m.Config.MasterKey,
	})
	if err := keys.Open(ctx); err != nil {
		return nil, err
	}
	return keys, nil
}

func (m *Main) awaitBootMaterial(context.Context) error {
	<-m.bootDone
	if m.bootErr != nil {
		return fmt.Errorf("first-boot material: %w", m.bootErr)
	}
	return nil
}

// openCache runs miniredis in process by default, or uses a Redis server.
func (m *Main) openCache(ctx context.Context) error {
	var c interface {
		engine.Cache
		opener
	}
	if m.Config.Cache == "embedded" {
		c = redis.NewEmbedded(redis.Options{})
	} else {
		c = redis.New(m.Config.Cache, redis.Options{KeyPrefix: "hoodcloud:"})
	}
	if err := c.Open(ctx); err != nil {
		return err
	}
	m.Cache = c
	m.onClose(func(context.Context) error { return c.Close() })
	m.addCheck("cache", true, c.Ping)
	return nil
}

// rebuildCommandQueue restores the queue from the Store: the embedded
// cache forgets everything on restart, and the Store is the source of truth.
func (m *Main) rebuildCommandQueue(ctx context.Context) error {
	n, err := engine.RebuildCommandQueue(ctx, m.Store, m.Cache)
	if n > 0 {
		m.Logger.Info("command queue rebuilt", "commands", n)
	}
	return err
}

func (m *Main) openEvents(ctx context.Context) error {
	if m.Config.Events != "embedded" {
		bus := hnats.New(m.Config.Events)
		if err := bus.Open(ctx); err != nil {
			return err
		}
		return m.useEvents(bus)
	}
	bus, err := hnats.NewEmbedded(hnats.EmbeddedConfig{
		StoreDir: filepath.Join(m.Config.DataDir, "nats"),
		Listen:   m.Config.NATSListen,
	})
	if err != nil {
		return err
	}
	if err := bus.Open(ctx); err != nil {
		return err
	}
	m.NATS = bus
	return m.useEvents(bus)
}

func (m *Main) useEvents(bus engine.Events) error {
	m.Events = bus
	m.onClose(func(context.Context) error { return bus.Close() })
	m.addCheck("events", true, bus.Ping)
	return nil
}

// openTemporalServer starts the embedded Temporal, when configured.
func (m *Main) openTemporalServer(ctx context.Context) error {
	if m.Config.Temporal != "embedded" {
		return nil
	}
	_, err := m.openEmbeddedTemporal(ctx)
	return err
}

func (m *Main) openEmbeddedTemporal(ctx context.Context) (*devserver.Server, error) {
	srv, err := devserver.New(devserver.Config{
		DBFile:     filepath.Join(m.Config.DataDir, "temporal.db"),
		Host:       m.Config.TemporalHost,
		Ports:      m.Config.TemporalPorts,
		Namespaces: []string{m.Config.TemporalNamespace},
		Logger:     m.Logger,
		LogLevel:   m.Config.TemporalLogLevel,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Open(ctx); err != nil {
		return nil, err
	}
	m.temporalServer = srv
	m.onClose(func(context.Context) error { return srv.Close() })
	return srv, nil
}
