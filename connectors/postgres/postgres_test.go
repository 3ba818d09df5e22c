package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/engine/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open returns a store on a schema of its own, migrated.
func open(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestStore runs the suite every store passes.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store { return open(t) })
}

// TestSeqScanSetting checks that the store's sessions plan without
// sequential scans unless the URL says otherwise.
func TestSeqScanSetting(t *testing.T) {
	for _, tc := range []struct{ suffix, want string }{
		{"", "off"},
		{"&enable_seqscan=on", "on"},
	} {
		s, err := postgres.Open(context.Background(), pgtest.Schema(t)+tc.suffix, postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := s.Pool().QueryRow(context.Background(), `SHOW enable_seqscan`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got != tc.want {
			t.Errorf("URL suffix %q: enable_seqscan = %s, want %s", tc.suffix, got, tc.want)
		}
	}
}
