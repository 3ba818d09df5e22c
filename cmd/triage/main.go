// Command triage is the rules-as-config workflow engine for customer
// support on WhatsApp: check, test, replay and explain rule sets.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"
)

// Exit codes: 0 all good, 1 problems found (or tests failed), 2 usage.
const (
	exitOK      = 0
	exitProblem = 1
	exitUsage   = 2
)

// cli is the command line. Each command's Run returns an exit code so that
// run, and the tests that call it, never have to call os.Exit.
type cli struct {
	Check   checkCmd   `cmd:"" help:"Validate a rule directory: every problem as path:line:col: message."`
	Test    testCmd    `cmd:"" help:"Run the rule tests (*_test.yaml) in a rule directory."`
	Replay  replayCmd  `cmd:"" help:"Evaluate a JSON Lines event file; print one decision per line."`
	Explain explainCmd `cmd:"" help:"Show, rule by rule, why each matched or not for one event."`
	Serve   serveCmd   `cmd:"" help:"Run the daemon: WhatsApp webhook, /v1 API, SLA timers, outbound delivery, hot reload."`
	Migrate migrateCmd `cmd:"" help:"Create or upgrade the PostgreSQL schema (serve does it too when it starts)."`
}

// io bundles the streams a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError marks an error as the caller's mistake (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run(args []string, in io.Reader, out, errw io.Writer) int {
	var c cli
	exitCode := -1
	parser, err := kong.New(&c,
		kong.Name("triage"),
		kong.Description("Rules-as-config workflow engine for customer support on WhatsApp."),
		kong.UsageOnError(),
		kong.Writers(out, errw),
		kong.Exit(func(code int) { exitCode = code }),
		kong.Bind(stdio{in: in, out: out, err: errw}),
	)
	if err != nil {
		fmt.Fprintf(errw, "triage: %v\n", err)
		return exitUsage
	}
	ctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(errw, "triage: %v\n", err)
		return exitUsage
	}
	var code int
	if err := ctx.Run(&code); err != nil {
		fmt.Fprintf(errw, "triage: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitProblem
	}
	return code
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// openInput opens a file argument, "-" being standard input.
func openInput(name string, io stdio) (io.ReadCloser, error) {
	if name == "-" {
		return readNopCloser{io.in}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, usageError{err}
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, usagef("%s is a directory, not a file of events", name)
	}
	return f, nil
}

type readNopCloser struct{ io.Reader }

func (readNopCloser) Close() error { return nil }
