package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triage-dev/triage/connectors/postgres"
)

type migrateCmd struct {
	Database string `help:"PostgreSQL URL (or TRIAGE_DATABASE_URL)." env:"TRIAGE_DATABASE_URL"`
}

// Run applies the database migrations not yet applied. serve applies them
// too when it starts; running them first, once, keeps a deployment's
// replicas from starting on a schema change.
func (c *migrateCmd) Run(io stdio, code *int) error {
	if c.Database == "" {
		return usagef("migrate needs --database URL (or TRIAGE_DATABASE_URL)")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, c.Database)
	if err != nil {
		return usageError{fmt.Errorf("database url: %w", err)}
	}
	defer pool.Close()
	log := slog.New(slog.NewTextHandler(io.err, nil))
	applied, err := postgres.Migrate(ctx, pool, log)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(io.out, "the database schema is up to date")
	}
	for _, m := range applied {
		fmt.Fprintf(io.out, "applied %s\n", m.Path)
	}
	*code = exitOK
	return nil
}
