package main

import (
	"fmt"
	"regexp"

	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/ruletest"
)

type testCmd struct {
	Dir     string `arg:"" help:"Rule directory."`
	Filter  string `name:"run" help:"Run only the tests whose name matches this regular expression."`
	Verbose bool   `short:"v" help:"List every test, not only failures."`
}

func (c *testCmd) Run(io stdio, code *int) error {
	var filter *regexp.Regexp
	if c.Filter != "" {
		re, err := regexp.Compile(c.Filter)
		if err != nil {
			return usagef("--run: %v", err)
		}
		filter = re
	}
	files, tests, err := rules.ReadDir(c.Dir)
	if err != nil {
		return usageError{err}
	}
	set, err := rules.Compile(files, rules.Options{Dir: c.Dir})
	if err != nil {
		if es, ok := rules.AsErrors(err); ok {
			for _, e := range es {
				fmt.Fprintln(io.out, e.Error())
			}
			fmt.Fprintf(io.out, "FAIL: the rules in %s do not load, so no test ran\n", c.Dir)
			*code = exitProblem
			return nil
		}
		return err
	}
	if len(tests) == 0 {
		fmt.Fprintf(io.err, "%s: no *_test.yaml files: nothing tested\n", c.Dir)
		return nil
	}
	passed, failed := 0, 0
	for _, tf := range tests {
		path := rules.DisplayPath(c.Dir, tf.Path)
		suite, err := ruletest.Parse(path, tf.Data)
		if err != nil {
			fmt.Fprintln(io.out, err.Error())
			fmt.Fprintf(io.out, "FAIL %s: the test file is malformed\n", path)
			failed++
			continue
		}
		for _, tc := range suite.Tests {
			if filter != nil && !filter.MatchString(tc.Name) {
				continue
			}
			res := tc.Run(set)
			if res.Passed() {
				passed++
				if c.Verbose {
					fmt.Fprintf(io.out, "ok   %s: %s\n", tc.Pos, tc.Name)
				}
				continue
			}
			failed++
			fmt.Fprintf(io.out, "FAIL %s: %s\n", tc.Pos, tc.Name)
			for _, f := range res.Failures {
				fmt.Fprintf(io.out, "    %s\n", f)
			}
		}
	}
	fmt.Fprintf(io.out, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		*code = exitProblem
	}
	return nil
}
