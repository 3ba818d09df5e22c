package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ownerPing is how often the owner's lock is checked, and how soon a lost
// one is taken again.
const ownerPing = 2 * time.Second

// errOwnerLost refuses claims while the store does not hold its owner
// lock: other stores would take what it claimed for a dead store's.
var errOwnerLost = errors.New("the lease owner lock is lost; reconnecting")

// owner is a store's identity in outbox leases: a random key, and the
// session-level advisory lock on that key, held on a connection of its
// own for as long as the store is open. Not a pooled connection: the pool
// hands its connections to others, session locks with them. A store
// claims an item with its key in leased_by; another store that can take
// pg_try_advisory_xact_lock on that key knows no session holds it, so
// the claiming store is gone, and releases the lease.
type owner struct {
	key  int64
	cfg  *pgx.ConnConfig
	log  *slog.Logger
	held atomic.Bool
	pid  atomic.Uint32 // the lock's backend, for tests
	// ctx ends when the store closes, so that a lock being waited for is
	// given up.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once
}

// newOwner takes the lock with a fresh key and keeps it until close.
func newOwner(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) (*owner, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lease owner key: %w", err)
	}
	o := &owner{key: int64(binary.LittleEndian.Uint64(b[:]) >> 1), cfg: cfg, log: log, done: make(chan struct{})}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	conn, err := o.lock(ctx)
	if err != nil {
		o.cancel()
		return nil, err
	}
	go o.keep(conn)
	return o, nil
}

// lock opens the owner's connection and takes its lock. It waits for the
// lock: only a store releasing this key's leases, in one short
// transaction, can hold it.
func (o *owner) lock(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, o.cfg)
	if err != nil {
		return nil, fmt.Errorf("lease owner connection: %w", err)
	}
	// The backend's own pid: behind PgBouncer, the connection's is
	// PgBouncer's.
	var pid uint32
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) AS l`, o.key).Scan(&pid); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("lease owner lock: %w", err)
	}
	o.pid.Store(pid)
	o.held.Store(true)
	return conn, nil
}

// keep checks the connection and, when it is lost, opens another and
// takes the lock again; claims are refused in between.
func (o *owner) keep(conn *pgx.Conn) {
	defer close(o.done)
	t := time.NewTicker(ownerPing)
	defer t.Stop()
	for {
		select {
		case <-o.ctx.Done():
			if conn != nil {
				_ = conn.Close(context.Background())
			}
			return
		case <-t.C:
		}
		if conn != nil {
			err := o.check(conn)
			if err == nil {
				continue
			}
			o.held.Store(false)
			o.log.Warn("lost the lock that marks this daemon's outbox leases as live; claims wait until it is taken again", "error", err)
			_ = conn.Close(context.Background())
			conn = nil
		}
		c, err := o.lock(o.ctx)
		if o.ctx.Err() != nil {
			if c != nil {
				_ = c.Close(context.Background())
			}
			return
		}
		if err != nil {
			o.log.Warn("taking the outbox lease owner lock again failed; retrying", "in", ownerPing, "error", err)
			continue
		}
		conn = c
		o.log.Info("outbox lease owner lock taken again")
	}
}

// check asks whether the connection's backend still holds the lock,
// rather than whether the connection answers: a pooler in front of
// PostgreSQL may answer on another backend than the one that took it.
func (o *owner) check(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), ownerPing)
	defer cancel()
	var held bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
		AND granted AND objsubid = 1 AND classid::bigint = $1::bigint >> 32 AND objid::bigint = $1::bigint & 4294967295)`, o.key).Scan(&held)
	if err == nil && !held {
		err = errors.New("the session no longer holds the lock")
	}
	return err
}

func (o *owner) close() {
	o.stop.Do(func() {
		o.cancel()
		<-o.done
		o.held.Store(false)
	})
}
