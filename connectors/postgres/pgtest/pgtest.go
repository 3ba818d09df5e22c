// Package pgtest finds a PostgreSQL server for tests and gives each test
// a schema of its own on it.
//
// The server is, in order: TRIAGE_TEST_DATABASE_URL; PostgreSQL at
// 127.0.0.1:5432 (user postgres, database test, as on the project's
// machines) when it answers; a throwaway cluster started with initdb and
// pg_ctl when those are installed (not as root: initdb refuses). Without
// any, tests that need one skip with a message saying so, and fail
// instead when TRIAGE_REQUIRE_DATABASE is set, as .ci/run sets it: CI
// must not pass by skipping them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the machine's PostgreSQL, tried when
// TRIAGE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	once    sync.Once
	baseURL string
	why     string    // why there is no server, when there is none
	cluster *exec.Cmd // pg_ctl of a throwaway cluster
	dataDir string
)

// URL returns the base URL of the test server, or skips tb (fails it
// under TRIAGE_REQUIRE_DATABASE).
func URL(tb testing.TB) string {
	tb.Helper()
	once.Do(find)
	if baseURL == "" {
		msg := "NO POSTGRESQL FOR THE DATABASE TESTS: " + why +
			"; set TRIAGE_TEST_DATABASE_URL, or start the machine's PostgreSQL (.ci/run does)"
		if os.Getenv("TRIAGE_REQUIRE_DATABASE") != "" {
			tb.Fatal(msg + " (TRIAGE_REQUIRE_DATABASE is set: this is a failure)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		tb.Skip(msg)
	}
	return baseURL
}

func find() {
	if u := os.Getenv("TRIAGE_TEST_DATABASE_URL"); u != "" {
		if err := ping(u); err != nil {
			why = fmt.Sprintf("TRIAGE_TEST_DATABASE_URL does not answer: %v", err)
			return
		}
		baseURL = u
		return
	}
	err := ping(DefaultURL)
	if err == nil {
		baseURL = DefaultURL
		return
	}
	why = fmt.Sprintf("127.0.0.1:5432 does not answer (%v)", err)
	u, err := throwaway()
	if err != nil {
		why += "; no throwaway cluster either: " + err.Error()
		return
	}
	baseURL = u
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// throwaway starts a cluster of its own in a temporary directory.
func throwaway() (string, error) {
	if os.Geteuid() == 0 {
		return "", fmt.Errorf("initdb cannot run as root")
	}
	bin, err := binDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "triage-pgtest-")
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if out, err := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-w", "-l", filepath.Join(dir, "log"), "start").CombinedOutput(); err != nil {
		return "", fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	dataDir = data
	cluster = exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop")
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
}

// binDir finds the PostgreSQL server binaries.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb and pg_ctl are not installed")
}

// Main runs a package's tests and stops the throwaway cluster, if one was
// started: call it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Run()
		_ = os.RemoveAll(filepath.Dir(dataDir))
	}
	return code
}

// Schema creates an empty schema on the test server for tb and returns a
// URL whose connections work in it; the schema is dropped when tb ends.
func Schema(tb testing.TB) string {
	tb.Helper()
	base := URL(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "triage_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Logf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Logf("drop schema %s: %v", name, err)
		}
	})
	return WithSearchPath(base, name)
}

// WithSearchPath returns u with its connections' search_path set to
// schema.
func WithSearchPath(u, schema string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Set("search_path", schema)
	p.RawQuery = q.Encode()
	return p.String()
}
