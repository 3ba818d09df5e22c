// Package postgres is the daemon's durable store: engine.Store in
// PostgreSQL, with pgx. Nothing a unit of work committed is lost on a
// crash, and several daemons may share one database: conversations are
// locked row by row for a unit of work, the state they share under one
// transaction-scoped advisory lock, and the outbox and SLA timers are
// claimed with FOR UPDATE SKIP LOCKED.
//
// The schema is created and upgraded by the SQL migrations embedded in
// the binary (migrations/), applied by goose under its lock: Migrate.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/triage-dev/triage/engine"
)

//go:embed migrations/*.sql
var embedded embed.FS

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
const DefaultMaxConns = 24

// DefaultMinConns is how many connections the pool keeps open when the URL
// sets no pool_min_conns: about as many as a busy daemon's units of work
// use at once.
const DefaultMinConns = 8

// Options configure a Store.
type Options struct {
	// Migrate applies pending migrations when the store opens, as
	// `triage serve` does; `triage migrate` applies them alone.
	Migrate bool
	// Logger receives what migrations did; nil discards it.
	Logger *slog.Logger
	// Tracer, when set, sees every statement the store runs (pgx's
	// tracelog package turns it into a log).
	Tracer pgx.QueryTracer
}

// Store is engine.Store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// outbox is the pool of the outbox's claims and delivery results,
	// committed without waiting for the WAL to reach the disk: a claim or
	// a result lost in a PostgreSQL crash only means the item is claimed
	// and delivered again, which at-least-once delivery allows. What
	// acknowledges an event (units of work, statuses) uses pool.
	outbox *pgxpool.Pool
	// results carries delivery results to writeResults, which group-
	// commits them; quit stops it, and written is closed once it stopped.
	results chan result
	quit    chan struct{}
	written chan struct{}
	closing sync.Once
	// sharedKey is the advisory lock of the shared assignment state, made
	// of the schema's name so that stores in different schemas of one
	// database (tests, tenants) do not wait for each other.
	sharedKey int64
	// owner marks this store's outbox leases as live; reapedAt is when
	// Claim last released the leases of stores that are gone (unix ns).
	owner    *owner
	reapedAt atomic.Int64
}

// Open connects to the database at url (a postgres:// URL or a DSN; pgx
// reads pool settings such as pool_max_conns from it) and, with
// Options.Migrate, brings its schema up to date.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default, four on a small machine, is fewer than the units
		// of work the daemon runs at once (a shard each, the timer, the
		// dispatcher's claims and results).
		cfg.MaxConns = DefaultMaxConns
	}
	if !strings.Contains(url, "pool_min_conns") {
		// Opened in the background when the pool is made, so that the
		// first webhooks after a start do not each wait for a connection
		// to be opened and set up: BenchmarkServePostgres's first second
		// at 1,000/s had a p99 of 100-190 ms without, 33-60 ms with.
		cfg.MinConns = min(DefaultMinConns, cfg.MaxConns)
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	// Session settings are set on each new connection rather than sent
	// as startup parameters, which PgBouncer refuses ("unsupported
	// startup parameter") for all but a few: the daemon's own, and those
	// of the URL (search_path, say) but the ones PgBouncer takes.
	var session []setting
	for _, name := range slices.Sorted(maps.Keys(cfg.ConnConfig.RuntimeParams)) {
		if !startupParams[name] {
			session = append(session, setting{name, cfg.ConnConfig.RuntimeParams[name]})
			delete(cfg.ConnConfig.RuntimeParams, name)
		}
	}
	if !slices.ContainsFunc(session, func(st setting) bool { return st.name == "enable_seqscan" }) {
		// Every statement a unit of work, a claim or a result runs finds
		// its rows by an index (TestStatementsUseIndexes). A prepared
		// statement's plan is cached, though, and one made while a table
		// was a few pages long scans the table whole, every time, until
		// ANALYZE replans it: after autovacuum saw 10% more rows, or never
		// where autovacuum is off. BenchmarkServePostgres saw the cost of
		// a unit grow with the number of conversations that way.
		session = append(session, setting{"enable_seqscan", "off"})
	}
	cfg.AfterConnect = setSession(session)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", cfg.ConnConfig.Host, err)
	}
	ocfg := cfg.Copy()
	ocfg.AfterConnect = setSession(slices.Concat(session, []setting{{"synchronous_commit", "off"}}))
	ocfg.MaxConns = max(2, cfg.MaxConns/3)
	ocfg.MinConns = min(2, cfg.MinConns, ocfg.MaxConns) // a claim and a result write
	outbox, err := pgxpool.NewWithConfig(ctx, ocfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	own, err := newOwner(ctx, cfg.ConnConfig.Copy(), log)
	if err != nil {
		pool.Close()
		outbox.Close()
		return nil, err
	}
	s := &Store{pool: pool, outbox: outbox, results: make(chan result), quit: make(chan struct{}), written: make(chan struct{}), owner: own}
	go s.writeResults()
	if opts.Migrate {
		if _, err := Migrate(ctx, pool, opts.Logger); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := pool.QueryRow(ctx, `SELECT hashtextextended(current_schema() || ':triage:shared', 0)`).Scan(&s.sharedKey); err != nil {
		s.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('conversations') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		s.Close()
		if err == nil {
			err = errors.New("its tables do not exist: run `triage migrate` (or serve, which migrates)")
		}
		return nil, fmt.Errorf("schema %w", err)
	}
	return s, nil
}

// startupParams are the runtime parameters PgBouncer accepts in a
// connection's startup packet (and tracks per client); any other is set
// after connecting.
var startupParams = map[string]bool{"application_name": true, "client_encoding": true, "datestyle": true, "timezone": true, "standard_conforming_strings": true}

// setting is a session setting: a run-time parameter and its value.
type setting struct{ name, value string }

// setSession returns a pgxpool AfterConnect hook that applies settings
// for the session, in order.
func setSession(settings []setting) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, c *pgx.Conn) error {
		for _, st := range settings {
			if _, err := c.Exec(ctx, `SELECT set_config($1, $2, false)`, st.name, st.value); err != nil {
				return fmt.Errorf("set %s: %w", st.name, err)
			}
		}
		return nil
	}
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close implements engine.Store.
func (s *Store) Close() {
	s.closing.Do(func() {
		close(s.quit)
		<-s.written
		s.pool.Close()
		s.outbox.Close()
		// Last: until now a delivery's result could still be written;
		// from now on what this store leased is claimed again at once.
		s.owner.close()
	})
}

// Migration is one migration Migrate applied.
type Migration struct {
	Version  int64
	Path     string
	Duration time.Duration
}

// Migrate applies the embedded migrations not yet applied, under goose's
// session advisory lock, so that several daemons starting at once apply
// each exactly once. It returns what it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]Migration, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	migrations, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	var out []Migration
	for _, r := range results {
		out = append(out, Migration{Version: r.Source.Version, Path: r.Source.Path, Duration: r.Duration})
		log.Info("database migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	if err != nil {
		return out, fmt.Errorf("migrate: %w", err)
	}
	return out, nil
}

var _ engine.Store = (*Store)(nil)

// queryRows runs a query and hands each row to scan.
func queryRows(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args []any, scan func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
