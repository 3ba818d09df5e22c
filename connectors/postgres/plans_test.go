package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/engine/storetest"
)

// statements records every statement a store ran, by its text.
type statements struct {
	mu  sync.Mutex
	sql map[string]bool
}

func (s *statements) add(sql string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sql[sql] = true
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.add(d.SQL)
	return ctx
}
func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *statements) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.add(d.SQL)
}
func (s *statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// growing are the tables that grow with traffic: a statement that scans
// one whole costs more with every event the daemon ever took.
var growing = []string{"conversations", "contacts", "events", "decisions", "messages", "statuses", "outbox"}

// wholeTableReads are the statements allowed to scan a growing table:
// none runs per event. The API's conversation list reads the
// conversations its filters match, a page (at most 1,001) at a time, and
// its filters are optional.
var wholeTableReads = []*regexp.Regexp{
	regexp.MustCompile(`^SELECT state FROM conversations\s+WHERE state IS NOT NULL AND \(\$1 = '' OR status = \$1\)`),
}

// TestStatementsUseIndexes runs the store suite, recording every
// statement, then plans each one with the store's session settings on a
// fresh schema whose growing tables hold a page of rows and were never
// analysed, as PostgreSQL plans a prepared statement it reuses (a generic
// plan, made without the values). A plan that scans a growing table
// whole is a statement whose cost grows with the database: in
// BenchmarkServePostgres a join on unnest(), planned while the table was
// small, scanned every conversation for each unit until the run ended.
func TestStatementsUseIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("short: runs the store suite again")
	}
	rec := &statements{sql: map[string]bool{}}
	storetest.Run(t, func(t *testing.T) engine.Store {
		s, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{Migrate: true, Tracer: rec})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	})
	if t.Failed() {
		return
	}
	s := open(t)
	ctx := context.Background()
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// A page of rows in each table: planned on tables that small, without
	// the store's settings, nearly every statement scans.
	if _, err := conn.Exec(ctx, smallTables); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	scan := regexp.MustCompile(`Seq Scan on (\w+)`)
	planned := 0
	for _, sql := range slices.Sorted(func(yield func(string) bool) {
		for k := range rec.sql {
			if !yield(k) {
				return
			}
		}
	}) {
		verb := strings.ToUpper(strings.Fields(sql + " x")[0])
		if !slices.Contains([]string{"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}, verb) || strings.Contains(sql, "goose_db_version") {
			continue
		}
		planned++
		name := fmt.Sprintf("plan%d", planned)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("prepare %s: %v", oneLine(sql), err)
			continue
		}
		var params int
		if err := conn.QueryRow(ctx, `SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1`, name).Scan(&params); err != nil {
			t.Fatal(err)
		}
		explain := "EXPLAIN EXECUTE " + name
		if params > 0 {
			explain += "(" + strings.TrimSuffix(strings.Repeat("NULL, ", params), ", ") + ")"
		}
		rows, err := conn.Query(ctx, explain, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Errorf("%s: %v", oneLine(sql), err)
			continue
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("%s: %v", oneLine(sql), err)
			continue
		}
		plan := strings.Join(lines, "\n")
		if slices.ContainsFunc(wholeTableReads, func(r *regexp.Regexp) bool { return r.MatchString(sql) }) {
			continue
		}
		for _, m := range scan.FindAllStringSubmatch(plan, -1) {
			if slices.Contains(growing, m[1]) {
				t.Errorf("%s\nscans %s whole:\n%s", oneLine(sql), m[1], plan)
			}
		}
	}
	if planned < 20 {
		t.Errorf("planned %d statements: the suite ran fewer than expected", planned)
	}
	t.Logf("planned %d statements", planned)
}

// smallTables puts a few rows in each growing table.
const smallTables = `
INSERT INTO conversations (id, state, contact_id) SELECT 'c' || g, '{}', 'p' || g FROM generate_series(1, 20) g;
INSERT INTO contacts (id, state) SELECT 'p' || g, '{}' FROM generate_series(1, 20) g;
INSERT INTO events (id, conversation_id, type, at, payload) SELECT 'e' || g, 'c' || g, 'message.received', now(), '{}' FROM generate_series(1, 20) g;
INSERT INTO decisions (conversation_id, event_id, ruleset, record) SELECT 'c' || g, 'e' || g, 'v', '{}' FROM generate_series(1, 20) g;
INSERT INTO messages (conversation_id, at, sender, body, wa_id) SELECT 'c' || g, now(), 'customer', 'hi', 'wamid.' || g FROM generate_series(1, 20) g;
INSERT INTO statuses (key, conversation_id, wa_id, status) SELECT 'wamid.' || g || '/sent', 'c' || g, 'wamid.' || g, 'sent' FROM generate_series(1, 20) g;
INSERT INTO outbox (conversation_id, order_key, key, kind, params, decided_at, due_at) SELECT 'c' || g, 'c:c' || g, 'k' || g, 'reply', '{}', now(), now() FROM generate_series(1, 20) g;
`

func oneLine(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return fmt.Sprintf("%q", s)
}
