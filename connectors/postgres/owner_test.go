package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
)

// addItem queues one pending outbound item, due at once, on store s's
// schema.
func addItem(t *testing.T, s *postgres.Store, key string) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), `INSERT INTO outbox (conversation_id, order_key, key, kind, params, decided_at, due_at)
		VALUES ('c1', 'c:' || $1, $1, 'reply', '{}', now(), now() - interval '1 second')`, key); err != nil {
		t.Fatal(err)
	}
}

// claimKeys claims with a lease of an hour and returns the items' keys
// and attempt numbers.
func claimKeys(t *testing.T, s *postgres.Store) map[string]int {
	t.Helper()
	items, err := s.Claim(context.Background(), time.Now(), 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, it := range items {
		got[it.Key] = it.Attempts
	}
	return got
}

// TestClaimAfterOwnerGone checks that what a store leased is claimed
// again at once when that store is gone (its owner lock free), and not
// while it runs, however long its lease.
func TestClaimAfterOwnerGone(t *testing.T) {
	url := pgtest.Schema(t)
	openAt := func() *postgres.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := openAt(), openAt()
	addItem(t, a, "k1")
	if got := claimKeys(t, a); got["k1"] != 1 || len(got) != 1 {
		t.Fatalf("a claimed %v, want k1 at attempt 1", got)
	}
	// b's first claim looks for leases of stores that are gone: a is not.
	if got := claimKeys(t, b); len(got) != 0 {
		t.Fatalf("b claimed %v while a, alive, holds the lease", got)
	}
	// A fresh store (its first claim reaps) does not take it either.
	if got := claimKeys(t, openAt()); len(got) != 0 {
		t.Fatalf("a new store claimed %v while a, alive, holds the lease", got)
	}

	a.Close() // as a killed process: the lease stays, the lock goes
	c := openAt()
	if got := claimKeys(t, c); got["k1"] != 2 || len(got) != 1 {
		t.Fatalf("after a is gone, a new store claimed %v, want k1 at attempt 2 before the hour's lease ran out", got)
	}
	var leasedBy int
	if err := c.Pool().QueryRow(context.Background(), `SELECT count(DISTINCT leased_by) FROM outbox WHERE leased_until > now()`).Scan(&leasedBy); err != nil {
		t.Fatal(err)
	}
	if leasedBy != 1 {
		t.Errorf("%d owners hold leases, want 1", leasedBy)
	}
}

// TestOwnerLockLost checks that a store whose owner connection is killed
// refuses to claim until it has taken its lock again, and then claims.
// The test holds the store's key meanwhile, so that the store cannot take
// it back before the test has looked.
func TestOwnerLockLost(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	a, err := postgres.Open(ctx, url, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addItem(t, a, "k1")
	if got := claimKeys(t, a); got["k1"] != 1 {
		t.Fatalf("a claimed %v", got)
	}
	test, err := a.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer test.Release()
	pid := postgres.OwnerPID(a)
	var killed bool
	if err := test.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating the owner's backend %d: %v, %v", pid, killed, err)
	}
	if _, err := test.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.OwnerKey(a)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for postgres.OwnerHeld(a) {
		if time.Now().After(deadline) {
			t.Fatal("the store did not notice that its owner lock was gone")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if items, err := a.Claim(ctx, time.Now(), 10, time.Hour); !errors.Is(err, postgres.ErrOwnerLost) {
		t.Errorf("without its owner lock, a claimed %d items, error %v", len(items), err)
	}
	if _, err := test.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.OwnerKey(a)); err != nil {
		t.Fatal(err)
	}
	for !postgres.OwnerHeld(a) {
		if time.Now().After(deadline) {
			t.Fatal("the store did not take its owner lock again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if postgres.OwnerPID(a) == pid {
		t.Error("the lock is held by the killed backend")
	}
	addItem(t, a, "k2")
	if got := claimKeys(t, a); got["k2"] != 1 {
		t.Errorf("with its lock again, a claimed %v, want k2", got)
	}
}
