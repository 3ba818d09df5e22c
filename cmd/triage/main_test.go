package main

import (
	"os"
	"testing"

	"github.com/triage-dev/triage/connectors/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster pgtest starts when no
// server answers (see pgtest), once every test has run.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
