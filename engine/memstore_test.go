package engine_test

import (
	"testing"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/engine/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) engine.Store { return engine.NewMemoryStore() })
}
