package main

import (
	"fmt"
	"strings"

	"github.com/triage-dev/triage/rules"
)

type checkCmd struct {
	Dir    string `arg:"" help:"Rule directory."`
	Format string `help:"Output format: text, or github for GitHub Actions annotations." enum:"text,github" default:"text"`
	Strict bool   `help:"Treat warnings as problems (exit 1)."`
}

func (c *checkCmd) Run(io stdio, code *int) error {
	set, err := rules.Load(c.Dir, rules.Options{})
	var problems rules.Errors
	if err != nil {
		es, ok := rules.AsErrors(err)
		if !ok {
			return usageError{err}
		}
		problems = es
	} else {
		problems = set.Warnings()
	}
	nerr, nwarn := 0, 0
	for _, p := range problems {
		if p.Severity == rules.SeverityError {
			nerr++
		} else {
			nwarn++
		}
		fmt.Fprintln(io.out, formatProblem(p, c.Format))
	}
	switch {
	case nerr > 0:
		fmt.Fprintf(io.err, "%s: %d error(s), %d warning(s)\n", c.Dir, nerr, nwarn)
		*code = exitProblem
	case nwarn > 0 && c.Strict:
		fmt.Fprintf(io.err, "%s: %d warning(s), failing because of --strict\n", c.Dir, nwarn)
		*code = exitProblem
	default:
		fmt.Fprintf(io.err, "%s: OK, %d file(s), %d rule(s), %d warning(s), version %s\n",
			c.Dir, len(set.Files()), len(set.Rules()), nwarn, set.Version())
	}
	return nil
}

func formatProblem(p rules.Error, format string) string {
	if format != "github" {
		return p.Error()
	}
	level := "error"
	if p.Severity == rules.SeverityWarning {
		level = "warning"
	}
	// Workflow commands end at a newline and treat % specially.
	msg := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(p.Msg)
	return fmt.Sprintf("::%s file=%s,line=%d,col=%d::%s", level, p.Pos.File, p.Pos.Line, p.Pos.Col, msg)
}
