package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/hoodcloud/hoodcloud/store/postgres"
)

const migrateUsage = "usage: hoodcloud migrate [flags] up|status|force VERSION"

// migrate applies the PostgreSQL schema. The appliance never migrates by
// itself: an operator chooses when the schema changes.
func migrate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("migrate", args, env, stderr, nil)
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, migrateUsage)
		return errUsage
	}
	if !isPostgres(cfg.Store) {
		return configErrorf("migrate: store: the embedded store needs no migrations; set --store postgres://… (or HOODCLOUD_STORE)")
	}
	m := postgres.NewMigrator(cfg.Store)
	switch rest[0] {
	case "up":
		applied, err := m.Up(ctx)
		for _, mig := range applied {
			fmt.Fprintf(stdout, "applied %s\n", mig)
		}
		if err == nil && len(applied) == 0 {
			fmt.Fprintln(stdout, "schema is up to date")
		}
		return err
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "version: %d\ndirty: %t\npending: %d\n", st.Version, st.Dirty, len(st.Pending))
		for _, p := range st.Pending {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		return nil
	case "force":
		if len(rest) != 2 {
			return configErrorf("migrate force: want exactly one VERSION")
		}
		v, err := strconv.ParseInt(rest[1], 10, 64)
		if err != nil || v < 0 {
			return configErrorf("migrate force: VERSION must be a non-negative number, got %q", rest[1])
		}
		if err := m.Force(ctx, v); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema forced to version %d (not dirty)\n", v)
		return nil
	}
	return configErrorf("migrate: unknown action %q (%s)", rest[0], migrateUsage)
}
