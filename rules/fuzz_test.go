package rules_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/triage-dev/triage/rules"
)

// brokenSeeds are rule files with mistakes of every kind, for the fuzzer
// to start from.
var brokenSeeds = []string{
	"",
	"version: 1\n",
	"version: 2\nrules: {}\n",
	"- a\n- b\n",
	"version: 1\nrules: [\n",
	"version: 1\nparams: {a: [1]}\nlists: {l: []}\nmacros: {m: m, len: x}\n",
	"version: 1\nteams:\n  t:\n    members: [{id: a, name: \" \"}, {name: b}, {id: a}]\n",
	"version: 1\nrules:\n  - name: r\n    on: [message.recieved]\n    when: \"event.txt == \\\"a\\\" &&\"\n    actions: [{reply: {text: \"{{ }}\"}}, {escalat: {}}, {assign: {team: x, agent: y}}]\n",
	"version: 1\nrules:\n  - name: r\n    on: message.received\n    when: |\n      matches(event.text, \"[\") || minutes_since(now, now) > 1\n    actions:\n      - note:\n          text: >\n            {{ event.text \n",
	"version: 1\nbusiness_hours: {}\nsla: []\nx: &a [*a]\n",
	"version: 1\nrules:\n  - &r {name: r, on: [message.received], actions: [ask_bot]}\n  - *r\n",
	"version: 1\nmacros:\n  a: !!str 'b'\n  b: \"a\"\nrules:\n  - {name: r, on: [bot.answered], when: a, actions: [{tag: {add: ['{{ a }}']}}]}\n",
}

// FuzzLoad: any bytes as a rule file must load or fail with positioned
// problems, never panic.
func FuzzLoad(f *testing.F) {
	paths, err := filepath.Glob("../examples/rules/*.yaml")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no example rule files: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range brokenSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: the panic takes the input with it.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				panic(fmt.Sprintf("Compile hangs on %q", data))
			}
		}()
		set, err := rules.Compile([]rules.File{{Path: "f.yaml", Data: data}}, rules.Options{Dir: "rules"})
		var problems rules.Errors
		if err != nil {
			var es rules.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, not rules.Errors: %v", err, err)
			}
			if !es.Fatal() {
				t.Fatalf("failed with warnings only: %v", es)
			}
			if set != nil {
				t.Fatalf("a set and an error")
			}
			problems = es
		} else {
			problems = set.Warnings()
			if set.Version() == "" {
				t.Fatalf("no version")
			}
		}
		for _, p := range problems {
			if p.Pos.File != "rules/f.yaml" || p.Pos.Line < 1 || p.Pos.Col < 1 {
				t.Fatalf("bad position %#v for %q", p.Pos, p.Msg)
			}
			if p.Msg == "" {
				t.Fatalf("empty message at %v", p.Pos)
			}
		}
		if set != nil {
			// Whatever loads can be evaluated without panicking.
			env := set.NewEnv()
			s := state{}
			s.ev.Text = "speak to someone now"
			s.bind(env)
			for _, r := range set.Rules() {
				_, _ = r.Match(env)
				for _, a := range r.Actions {
					_, _ = a.Render(env)
				}
				c, _ := r.Clauses()
				for _, cl := range c {
					_, _ = cl.Eval(env)
				}
			}
		}
	})
}
