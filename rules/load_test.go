package rules_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/triage-dev/triage/rules"
)

// one makes a rule set of a single file, rules/a.yaml in positions.
func one(data string) []rules.File {
	return []rules.File{{Path: "a.yaml", Data: []byte(data)}}
}

// compile loads files as the directory "rules" and returns the set (nil
// when the load failed) and every problem, warnings included.
func compile(t *testing.T, files []rules.File) (*rules.Set, rules.Errors) {
	t.Helper()
	set, err := rules.Compile(files, rules.Options{Dir: "rules"})
	if err != nil {
		es, ok := rules.AsErrors(err)
		if !ok {
			t.Fatalf("Compile returned %T (%v), want rules.Errors", err, err)
		}
		if set != nil {
			t.Errorf("Compile returned a set and an error")
		}
		if !es.Fatal() {
			t.Errorf("Compile failed with warnings only:\n%v", es)
		}
		return nil, es
	}
	return set, set.Warnings()
}

// strs renders problems of one severity as file:line:col: message.
func strs(es rules.Errors, sev rules.Severity) []string {
	var out []string
	for _, e := range es {
		if e.Severity == sev {
			out = append(out, e.Error())
		}
	}
	return out
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

const knownTop = "(known: version, params, lists, macros, teams, business_hours, sla, rules)"
const knownRule = "(known: name, description, on, when, priority, stop, enabled, actions)"

// TestLoadErrors checks every load-time rule of the contract: the exact
// position and message of each error (warnings are left to TestWarnings).
//
// Columns are 1-based and counted by hand in the YAML below.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files []rules.File
		want  []string
	}{
		{
			name: "a when whose type is only known at run time",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.text ?? true
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:11: must be true or false, but the type of this expression is only known at run time; compare it with something, like ... == true`},
		},
		{
			name: "list entries and words that can never match a whole word",
			files: one(`version: 1
lists:
  x: ["!!!", ok]
rules:
  - name: r
    on: [message.received]
    when: contains_any(event.text, lists.x) || contains_word(event.text, "?!")
    actions: [ask_bot]
`),
			want: []string{
				`rules/a.yaml:3:7: list "x": "!!!" has no letters or digits, so it can never match a whole word`,
				`rules/a.yaml:7:74: contains_word: "?!" has no letters or digits, so it can never match a whole word`,
			},
		},
		{
			name: "a when starting with ! is a YAML tag",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: !bot_handles
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:11: YAML reads !bot_handles as a tag, not as part of the expression: quote the expression, like '!bot_handles'`},
		},
		{
			name: "a second YAML document is not dropped silently",
			files: one(`version: 1
rules: []
---
version: 1
`),
			want: []string{`rules/a.yaml:3:1: a rule file holds one YAML document; move what follows this --- into a file of its own`},
		},
		{
			name: "a team without members",
			files: one(`version: 1
teams:
  support: {strategy: least_busy}
rules:
  - {name: r, on: message.received, actions: [{assign: {team: support}}]}
`),
			want: []string{`rules/a.yaml:3:3: team "support" needs members`},
		},
		{
			name: "a # in an unquoted expression is a YAML comment, and the error says so",
			files: one(`version: 1
rules:
  - name: r
    on: message.received
    when: event.text == "a #1 fan"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:28: literal not terminated (YAML took "#1 fan\"" on this line as a comment; quote the expression if it belongs to it)`},
		},
		// Unknown keys anywhere.
		{
			name: "unknown top-level key",
			files: one(`version: 1
colour: red
`),
			want: []string{`rules/a.yaml:2:1: unknown key "colour" in a rule file ` + knownTop},
		},
		{
			name: "unknown key in a rule",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    colour: red
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:5: unknown key "colour" in a rule ` + knownRule},
		},
		{
			name: "unknown key in a team",
			files: one(`version: 1
teams:
  support:
    colour: red
    members:
      - {id: anita}
`),
			want: []string{`rules/a.yaml:4:5: unknown key "colour" in a team (known: strategy, members)`},
		},
		{
			name: "unknown key in a member",
			files: one(`version: 1
teams:
  support:
    members:
      - {id: anita, nmae: Anita}
`),
			want: []string{`rules/a.yaml:5:21: unknown key "nmae" in a team member (known: id, name, skills, languages, capacity)`},
		},
		{
			name: "unknown key in action params",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - escalate: {reason: x, bogus: 2}
`),
			want: []string{`rules/a.yaml:6:31: escalate: bogus: unknown parameter (known: reason, tier)`},
		},
		{
			name: "params on an action that takes none",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - ask_bot: {please: true}
`),
			want: []string{`rules/a.yaml:6:19: ask_bot: please: unknown parameter (this action takes none)`},
		},
		{
			name: "repeated key",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    name: s
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:5: a rule: key "name" repeated (first at line 3)`},
		},

		// Version.
		{
			name:  "missing version",
			files: one("# just a comment\nparams: {}\n"),
			want:  []string{`rules/a.yaml:2:1: missing version: every rule file starts with version: 1`},
		},
		{
			name:  "version 2",
			files: one("version: 2\n"),
			want:  []string{`rules/a.yaml:1:10: unsupported version 2: this triage reads version 1`},
		},
		{
			name:  "version as a string",
			files: one(`version: "1"` + "\n"),
			want:  []string{`rules/a.yaml:1:10: version must be an integer, not "1"`},
		},
		{
			name:  "missing version in the second file only",
			files: []rules.File{{Path: "a.yaml", Data: []byte("version: 1\n")}, {Path: "b.yaml", Data: []byte("lists: {}\n")}},
			want:  []string{`rules/b.yaml:1:1: missing version: every rule file starts with version: 1`},
		},
		{
			name:  "empty file",
			files: one(""),
			want:  []string{`rules/a.yaml:1:1: empty rule file: it needs at least version: 1`},
		},
		{
			name:  "not a mapping",
			files: one("- version: 1\n"),
			want:  []string{`rules/a.yaml:1:1: a rule file must be a mapping, not a list`},
		},
		{
			name:  "invalid YAML",
			files: one("version: 1\nrules: [\n"),
			want:  []string{`rules/a.yaml:2:1: invalid YAML: did not find expected node content`},
		},
		{
			name:  "no files",
			files: nil,
			want:  []string{`rules: no rule files (*.yaml, *.yml) found`},
		},

		// A name defined twice anywhere is an error at both places.
		{
			name: "duplicate param",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nparams:\n  limit: 1\n")},
				{Path: "sub/b.yaml", Data: []byte("version: 1\nparams: {limit: 2}\n")},
			},
			want: []string{
				`rules/a.yaml:3:3: param "limit" defined twice (also at rules/sub/b.yaml:2:10)`,
				`rules/sub/b.yaml:2:10: param "limit" defined twice (also at rules/a.yaml:3:3)`,
			},
		},
		{
			name: "duplicate list",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nlists:\n  words: [a]\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nlists:\n  other: [b]\n  words: [c]\n")},
			},
			want: []string{
				`rules/a.yaml:3:3: list "words" defined twice (also at rules/b.yaml:4:3)`,
				`rules/b.yaml:4:3: list "words" defined twice (also at rules/a.yaml:3:3)`,
			},
		},
		{
			name: "duplicate macro",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nmacros:\n  inbound: event.type == \"message.received\"\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nmacros:\n  inbound: \"true\"\n")},
			},
			want: []string{
				`rules/a.yaml:3:3: macro "inbound" defined twice (also at rules/b.yaml:3:3)`,
				`rules/b.yaml:3:3: macro "inbound" defined twice (also at rules/a.yaml:3:3)`,
			},
		},
		{
			name: "duplicate rule",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nrules:\n  - name: greet\n    on: [message.received]\n    actions: [ask_bot]\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nrules:\n  - {name: greet, on: [message.received], actions: [ask_bot]}\n")},
			},
			want: []string{
				`rules/a.yaml:3:11: rule "greet" defined twice (also at rules/b.yaml:3:12)`,
				`rules/b.yaml:3:12: rule "greet" defined twice (also at rules/a.yaml:3:11)`,
			},
		},
		{
			name: "the body of a duplicate rule is checked too",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nrules:\n  - {name: greet, on: [message.received], actions: [ask_bot]}\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nrules:\n  - name: greet\n    on: [message.recieved]\n    when: event.txt == \"\"\n    actions: [{tag: {}}]\n")},
			},
			want: []string{
				`rules/a.yaml:3:12: rule "greet" defined twice (also at rules/b.yaml:3:11)`,
				`rules/b.yaml:3:11: rule "greet" defined twice (also at rules/a.yaml:3:12)`,
				`rules/b.yaml:4:10: unknown event type "message.recieved" (did you mean message.received?)`,
				`rules/b.yaml:5:17: event has no field txt (did you mean text?)`,
				`rules/b.yaml:6:16: tag: needs add or remove`,
			},
		},
		{
			name: "duplicate team",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nteams:\n  support:\n    members: [{id: anita}]\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nteams:\n  support:\n    members: [{id: ben}]\n")},
			},
			want: []string{
				`rules/a.yaml:3:3: team "support" defined twice (also at rules/b.yaml:3:3)`,
				`rules/b.yaml:3:3: team "support" defined twice (also at rules/a.yaml:3:3)`,
			},
		},
		{
			name: "duplicate agent",
			files: []rules.File{
				{Path: "a.yaml", Data: []byte("version: 1\nteams:\n  support:\n    members: [{id: anita}]\n")},
				{Path: "b.yaml", Data: []byte("version: 1\nteams:\n  billing:\n    members:\n      - id: anita\n")},
			},
			want: []string{
				`rules/a.yaml:4:20: agent "anita" defined twice (also at rules/b.yaml:5:13)`,
				`rules/b.yaml:5:13: agent "anita" defined twice (also at rules/a.yaml:4:20)`,
			},
		},

		// Macros.
		{
			name: "macro cycle",
			files: one(`version: 1
macros:
  a: b && event.text != ""
  b: a
`),
			want: []string{`rules/a.yaml:3:3: macro cycle: a -> b -> a`},
		},
		{
			name: "macro self-cycle",
			files: one(`version: 1
macros:
  loop: loop || true
`),
			want: []string{`rules/a.yaml:3:3: macro cycle: loop -> loop`},
		},
		{
			name: "macro named like a builtin",
			files: one(`version: 1
macros:
  len: event.text
`),
			want: []string{`rules/a.yaml:3:3: macro name "len" is taken by the expression language; choose another`},
		},
		{
			name: "macro named like the environment",
			files: one(`version: 1
macros:
  event: "true"
`),
			want: []string{`rules/a.yaml:3:3: macro name "event" is taken by the expression language; choose another`},
		},
		{
			name: "macro named like a triage function",
			files: one(`version: 1
macros:
  contains_any: "true"
`),
			want: []string{`rules/a.yaml:3:3: macro name "contains_any" is taken by the expression language; choose another`},
		},
		{
			name: "rule using a broken macro",
			files: one(`version: 1
macros:
  broken: event.txt == ""
rules:
  - name: r
    on: [message.received]
    when: event.kind == "text" && broken
    actions: [ask_bot]
`),
			want: []string{
				`rules/a.yaml:3:17: event has no field txt (did you mean text?)`,
				`rules/a.yaml:7:35: uses macro "broken", which has errors`,
			},
		},

		// Rules: on.
		{
			name: "unknown event type with a suggestion",
			files: one(`version: 1
rules:
  - name: r
    on: [message.recieved]
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:4:10: unknown event type "message.recieved" (did you mean message.received?)`},
		},
		{
			name: "unknown event type without a suggestion",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received, lunch]
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:4:28: unknown event type "lunch" (known: message.received, bot.answered, agent.replied, agent.status, conversation.assigned, conversation.resolved, contact.opted_out, contact.opted_in, sla.warning, sla.breached)`},
		},
		{
			name: "rule without name, on and actions",
			files: one(`version: 1
rules:
  - description: nothing else
`),
			want: []string{
				`rules/a.yaml:3:5: rule needs a name`,
				`rules/a.yaml:3:5: rule (unnamed) needs on: the event types it applies to`,
				`rules/a.yaml:3:5: rule (unnamed) needs actions`,
			},
		},
		{
			name: "bad rule name",
			files: one(`version: 1
rules:
  - name: Greet Customer
    on: [message.received]
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:3:11: rule name "Greet Customer" must match [a-z0-9][a-z0-9_-]*`},
		},

		// Rules: when.
		{
			name: "when is not bool",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: conversation.bot_turns
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:11: expected bool, but got int`},
		},
		{
			name: "misspelt conversation field",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: conversation.asignee == ""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:24: conversation has no field asignee (did you mean assignee?)`},
		},
		{
			name: "misspelt event field",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.confidance < 0.5
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:17: event has no field confidance (did you mean confidence?)`},
		},
		{
			name: "misspelt contact field",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: contact.opted_ot
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:19: contact has no field opted_ot (did you mean opted_out?)`},
		},
		{
			name: "misspelt field of event.contact",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.contact.langauge == "en"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:25: event.contact has no field langauge (did you mean language?)`},
		},
		{
			name: "unknown field of event.sla",
			files: one(`version: 1
rules:
  - name: r
    on: [sla.breached]
    when: event.sla.deadline != now
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:21: event.sla has no field deadline (it has: policy, metric, due_at)`},
		},
		{
			name: "misspelt assignee field",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: assignee.firstname != ""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:20: assignee has no field firstname (did you mean first_name?)`},
		},
		{
			name: "type error",
			files: one(`version: 1
rules:
  - name: r
    on: [bot.answered]
    when: event.confidence < "0.6"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:28: invalid operation: < (mismatched types float64 and string)`},
		},
		{
			name: "unknown param",
			files: one(`version: 1
params:
  confidence_threshold: 0.6
rules:
  - name: r
    on: [bot.answered]
    when: event.confidence < params.confidence_treshold
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:7:37: params has no field confidence_treshold (did you mean confidence_threshold?)`},
		},
		{
			name: "param when none are defined",
			files: one(`version: 1
rules:
  - name: r
    on: [bot.answered]
    when: event.confidence < params.threshold
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:37: params has no field threshold (no params are defined)`},
		},
		{
			name: "unknown list",
			files: one(`version: 1
lists:
  urgent: [now]
rules:
  - name: r
    on: [message.received]
    when: contains_any(event.text, lists.urgnt)
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:7:42: lists has no field urgnt (did you mean urgent?)`},
		},
		{
			name: "list when none are defined",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: contains_any(event.text, lists.urgent)
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:42: lists has no field urgent (no lists are defined)`},
		},
		{
			name: "unknown name",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: converstion.id == ""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:11: unknown name converstion (did you mean conversation?)`},
		},
		{
			name: "syntax error",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.text = "x"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:22: unexpected token Operator("=")`},
		},
		{
			name: "unexpected end",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: (event.text == "a"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:28: unexpected token EOF`},
		},
		{
			name: "type errors inside function arguments",
			files: one(`version: 1
rules:
  - name: a
    on: [message.received]
    when: contains_any(event.topik, ["a"])
    actions: [ask_bot]
  - name: b
    on: [message.received]
    when: matches(event.txt, "^a")
    actions: [ask_bot]
  - name: c
    on: [message.received]
    when: minutes_since(conversation.openedat) > 5
    actions: [ask_bot]
  - name: d
    on: [message.received]
    when: contains_word(event.text, event.topik)
    actions: [ask_bot]
`),
			want: []string{
				`rules/a.yaml:5:30: event has no field topik (did you mean topic?)`,
				`rules/a.yaml:9:25: event has no field txt (did you mean text?)`,
				`rules/a.yaml:13:38: conversation has no field openedat (did you mean opened_at?)`,
				`rules/a.yaml:17:43: event has no field topik (did you mean topic?)`,
			},
		},
		{
			name:  "positions in a file with CRLF line ends",
			files: one("version: 1\r\nrules:\r\n  - name: r\r\n    on: [message.received]\r\n    when: |\r\n      event.text == \"a\" &&\r\n      event.txt == \"\"\r\n    actions: [ask_bot]\r\n"),
			want:  []string{`rules/a.yaml:7:13: event has no field txt (did you mean text?)`},
		},
		{
			name: "when is a list",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: [a, b]
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:11: when must be an expression, not a list`},
		},
		{
			name: "contains_word with a list",
			files: one(`version: 1
lists:
  urgent: [now]
rules:
  - name: r
    on: [message.received]
    when: contains_word(event.text, lists.urgent)
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:7:43: cannot use []string as argument (type string) to call contains_word`},
		},
		{
			name: "contains_any with a string",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: contains_any(event.text, "now")
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:36: cannot use string as argument (type list) to call contains_any`},
		},

		// Positions inside every scalar style. The error is always the
		// misspelt field txt; its column is counted in the file.
		{
			name: "position in a plain scalar on a continuation line",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.text == "a" &&
      event.txt == "b"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:6:13: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a single-quoted scalar with quotes",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: 'event.text == ''a'' && event.txt == ''x'''
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:41: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a double-quoted scalar with escapes",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: "event.text == \"a\\t\" && event.txt == \"\""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:44: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a double-quoted scalar with a tab escape",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: "event.text ==\t\"a\" && event.txt == \"\""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:42: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a multi-line double-quoted scalar",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: "event.text == \"\u00e9\" &&
      \"x\" != \"y\" && \
      event.txt == \"\""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:7:13: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a literal block",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: |  # the comment is not part of the value
      event.text == "a" &&
        event.txt == "b"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:7:15: event has no field txt (did you mean text?)`},
		},
		{
			name: "position in a folded block",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: >-
      event.text == "a"

      && event.txt == "b"
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:8:16: event has no field txt (did you mean text?)`},
		},
		{
			name: "position after multibyte text",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.text == "héllo wörld" && event.txt == ""
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:48: event has no field txt (did you mean text?)`},
		},
		{
			name: "position after an anchor and a tag",
			files: one(`version: 1
macros:
  a: &shared "event.txt == \"\""
  b: !!str event.text == "" && event.txt == ""
  c: !!str 'event.txt == ''x'''
`),
			want: []string{
				`rules/a.yaml:3:21: event has no field txt (did you mean text?)`,
				`rules/a.yaml:4:38: event has no field txt (did you mean text?)`,
				`rules/a.yaml:5:19: event has no field txt (did you mean text?)`,
			},
		},
		{
			name: "YAML booleans in when",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: TRUE
    actions: [ask_bot]
  - name: s
    on: [message.received]
    when: False
    actions: [ask_bot]
`),
			want: nil,
		},
		{
			name: "position in a macro",
			files: one(`version: 1
macros:
  wants_human: contains_any(event.txt, ["human"])
`),
			want: []string{`rules/a.yaml:3:35: event has no field txt (did you mean text?)`},
		},

		// Positions inside template segments of action params.
		{
			name: "template segment in a flow mapping",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - reply: {text: "Hi {{ contact.name }}, wait {{ eta_minuts }}"}
`),
			want: []string{`rules/a.yaml:6:55: unknown name eta_minuts (did you mean eta_minutes?)`},
		},
		{
			name: "template segment after escaped quotes",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - reply:
          text: "{{ assignee.id != \"\" ? assignee.first_name : \"a teammate\" }} replies in {{ eta_minuts }}"
`),
			want: []string{`rules/a.yaml:7:97: unknown name eta_minuts (did you mean eta_minutes?)`},
		},
		{
			name: "template segment in a single-quoted scalar",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note: {text: 'It''s {{ event.txt }}'}
`),
			want: []string{`rules/a.yaml:6:38: event has no field txt (did you mean text?)`},
		},
		{
			name: "template segment in a plain scalar",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note:
          text: Topic {{ event.topic }} from {{ contact.nmae }}
`),
			want: []string{`rules/a.yaml:7:57: contact has no field nmae (it has: id, name, language, phone, opted_out)`},
		},
		{
			name: "template segment in a literal block",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note:
          text: |
            Customer: {{ contact.name }}
            Said: {{ event.txt }}
`),
			want: []string{`rules/a.yaml:9:28: event has no field txt (did you mean text?)`},
		},
		{
			name: "template segment in a folded block",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - notify:
          slack: "#support"
          text: >
            New message from {{ contact.name }}
            saying {{ event.text + 1 }}
`),
			want: []string{`rules/a.yaml:10:34: invalid operation: + (mismatched types string and int)`},
		},
		{
			name: "template segment after multibyte text",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note: {text: "né — {{ event.text }} — {{ event.txt }}"}
`),
			want: []string{`rules/a.yaml:6:56: event has no field txt (did you mean text?)`},
		},
		{
			name: "template segment in a list param",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - tag: {add: [fixed, "{{ event.topik }}"]}
`),
			want: []string{`rules/a.yaml:6:38: event has no field topik (did you mean topic?)`},
		},
		{
			name: "unclosed template",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note: {text: "ok {{ event.text }} then {{ event.text"}
`),
			want: []string{`rules/a.yaml:6:48: template: unclosed {{: every {{ needs a }}`},
		},
		{
			name: "empty template segment",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note: {text: "ok {{  }}"}
`),
			want: []string{`rules/a.yaml:6:26: template: empty {{ }}`},
		},
		{
			name: "template syntax error",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - note: {text: "{{ event.text event.topic }}"}
`),
			want: []string{`rules/a.yaml:6:37: unexpected token Identifier("event")`},
		},

		// Actions.
		{
			name: "unknown action",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - escalat: {reason: x}
`),
			want: []string{`rules/a.yaml:6:9: unknown action "escalat" (did you mean escalate?)`},
		},
		{
			name: "unknown bare action",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions: [ask_bot, dance]
`),
			want: []string{`rules/a.yaml:5:24: unknown action "dance" (known: ask_bot, assign, escalate, note, notify, reply, send_template, set_priority, set_status, tag, unassign)`},
		},
		{
			name: "escalate without reason",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - escalate: {tier: 2}
      - escalate
`),
			want: []string{
				`rules/a.yaml:6:9: escalate: reason: is required`,
				`rules/a.yaml:7:9: escalate: reason: is required`,
			},
		},
		{
			name: "assign with both team and agent",
			files: one(`version: 1
teams:
  support:
    members: [{id: anita}]
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {team: support, agent: anita}
`),
			want: []string{`rules/a.yaml:9:33: assign: agent: give team or agent, not both`},
		},
		{
			name: "assign to an unknown team",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {team: suport}
`),
			want: []string{`rules/a.yaml:6:18: assign: team: unknown team "suport"`},
		},
		{
			name: "assign to an unknown agent",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {agent: nobody}
`),
			want: []string{`rules/a.yaml:6:18: assign: agent: unknown agent "nobody"`},
		},
		{
			name: "set_priority critical",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - set_priority: {priority: critical}
`),
			want: []string{`rules/a.yaml:6:24: set_priority: priority: "critical" is not one of low, normal, high, urgent`},
		},
		{
			name: "tag with nothing",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - tag: {}
      - tag
`),
			want: []string{
				`rules/a.yaml:6:9: tag: needs add or remove`,
				`rules/a.yaml:7:9: tag: needs add or remove`,
			},
		},
		{
			name: "action with two keys",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - escalate: {reason: x}
        ask_bot:
`),
			want: []string{"rules/a.yaml:6:9: an action is a one-key mapping like `- escalate: {reason: keyword}`; this one has 2 keys"},
		},
		{
			name: "action params not a mapping",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - reply: hello
      - ask_bot: now
`),
			want: []string{
				`rules/a.yaml:6:16: reply takes a mapping of parameters, like {text}`,
				`rules/a.yaml:7:18: ask_bot takes no parameters`,
			},
		},
		{
			name: "several bad params of one action",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions:
      - send_template: {name: "", params: [ok, 3]}
`),
			want: []string{
				`rules/a.yaml:6:9: send_template: language: is required`,
				`rules/a.yaml:6:25: send_template: name: must not be empty`,
				`rules/a.yaml:6:35: send_template: params: entry 2 must be a string, not a number`,
			},
		},
		{
			name: "no actions",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    actions: []
`),
			want: []string{`rules/a.yaml:5:14: actions needs at least one action`},
		},

		// Functions.
		{
			name: "invalid regular expression",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: matches(event.text, "[")
    actions: [ask_bot]
`),
			want: []string{"rules/a.yaml:5:31: matches: invalid regular expression: error parsing regexp: missing closing ]: `[`"},
		},
		{
			name: "invalid regular expression in the operator form",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.text matches "("
    actions: [ask_bot]
`),
			want: []string{"rules/a.yaml:5:22: error parsing regexp: missing closing ): `(`"},
		},
		{
			name: "minutes_since with two arguments",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: event.kind == "text" && minutes_since(now, conversation.opened_at) > 5
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:35: minutes_since takes one argument, a time`},
		},
		{
			name: "hours_since with a string",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: hours_since(event.text) > 5
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:29: cannot use string as argument (type time.Time) to call hours_since`},
		},
		{
			name: "in_business_hours with an unknown calendar",
			files: one(`version: 1
rules:
  - name: r
    on: [message.received]
    when: in_business_hours("office")
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:5:29: in_business_hours: unknown business_hours calendar "office"`},
		},

		// A calendar without opening hours (more in sla_test.go).
		{
			name: "business_hours and sla",
			files: one(`version: 1
business_hours:
  office:
    timezone: Asia/Kolkata
sla:
  - name: urgent
    first_response: 2m
`),
			want: []string{
				`rules/a.yaml:3:3: calendar "office" needs weekly opening hours`,
			},
		},

		// Params, lists, teams.
		{
			name: "param that is a list",
			files: one(`version: 1
params:
  limit: [1, 2]
`),
			want: []string{`rules/a.yaml:3:10: param "limit" must be a number, a string or true/false, not a list`},
		},
		{
			name: "default_eta_minutes not a whole number",
			files: one(`version: 1
params:
  default_eta_minutes: 2.5
`),
			want: []string{`rules/a.yaml:3:3: param default_eta_minutes must be a whole number of minutes, 1 or more`},
		},
		{
			name: "empty list",
			files: one(`version: 1
lists:
  words: []
rules:
  - name: r
    on: [message.received]
    when: contains_any(event.text, lists.words)
    actions: [ask_bot]
`),
			want: []string{`rules/a.yaml:3:3: list "words" is empty`},
		},
		{
			name: "team strategy and member",
			files: one(`version: 1
teams:
  support:
    strategy: random
    members:
      - {id: Anita, capacity: 0}
      - {name: Ben}
`),
			want: []string{
				`rules/a.yaml:4:15: strategy "random" is not round_robin or least_busy`,
				`rules/a.yaml:6:14: agent id "Anita" must match [a-z0-9][a-z0-9_-]*`,
				`rules/a.yaml:6:31: capacity must be 1 or more (leave it out for no limit)`,
				`rules/a.yaml:7:9: team member needs an id`,
			},
		},
		{
			name: "blank member name",
			files: one(`version: 1
teams:
  support:
    members:
      - {id: anita, name: "  "}
rules:
  - name: r
    on: [message.received]
    actions: [{assign: {team: support}}, {reply: {text: "{{ assignee.first_name }} here"}}]
`),
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, es := compile(t, tt.files)
			diffLines(t, "errors", strs(es, rules.SeverityError), tt.want)
		})
	}
}

// TestAllProblemsInOneRun: five different mistakes in one file give five
// errors, in file order, and nothing else.
func TestAllProblemsInOneRun(t *testing.T) {
	src := `version: 1
params:
  threshold: 0.6
rules:
  - name: first
    on: [bot.answerd]
    when: event.confidence < params.threshold
    actions:
      - escalate: {reason: low}
  - name: second
    on: [message.received]
    when: event.confidence < params.treshold
    actions:
      - set_priority: {priority: critical}
      - reply: {text: "{{ contact.nam }}"}
    colour: blue
`
	_, es := compile(t, one(src))
	want := []string{
		`rules/a.yaml:6:10: unknown event type "bot.answerd" (did you mean bot.answered?)`,
		`rules/a.yaml:12:37: params has no field treshold (did you mean threshold?)`,
		`rules/a.yaml:14:24: set_priority: priority: "critical" is not one of low, normal, high, urgent`,
		`rules/a.yaml:15:35: contact has no field nam (did you mean name?)`,
		`rules/a.yaml:16:5: unknown key "colour" in a rule ` + knownRule,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	diffLines(t, "problems", got, want)
	if len(es) > 0 && es[0].Pos != (rules.Pos{File: "rules/a.yaml", Line: 6, Col: 10}) {
		t.Errorf("first position = %#v", es[0].Pos)
	}
}

// TestErrorsAcrossFilesInLoadOrder: problems are sorted by the files' load
// order, not by name, then by line and column.
func TestErrorsAcrossFilesInLoadOrder(t *testing.T) {
	files := []rules.File{
		{Path: "b.yaml", Data: []byte("version: 1\nzzz: 1\naaa: 2\n")},
		{Path: "a.yaml", Data: []byte("aaa: 1\n")},
	}
	_, es := compile(t, files)
	want := []string{
		`rules/b.yaml:2:1: unknown key "zzz" in a rule file ` + knownTop,
		`rules/b.yaml:3:1: unknown key "aaa" in a rule file ` + knownTop,
		`rules/a.yaml:1:1: unknown key "aaa" in a rule file ` + knownTop,
		`rules/a.yaml:1:1: missing version: every rule file starts with version: 1`,
	}
	diffLines(t, "problems", strs(es, rules.SeverityError), want)
}

const validSet = `version: 1
params:
  threshold: 0.6
  default_eta_minutes: 7
lists:
  human: [human, agent, "speak to someone"]
macros:
  wants_human: contains_any(event.text, lists.human)
teams:
  support:
    members:
      - {id: anita, name: Anita Rao}
rules:
  - name: low
    on: [bot.answered]
    when: event.confidence < params.threshold
    actions: [{escalate: {reason: low}}]
  - name: human
    on: [message.received]
    when: wants_human
    priority: 100
    stop: true
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
  - name: bot
    on: [message.received, bot.answered]
    actions: [ask_bot]
  - name: off
    on: [message.received]
    enabled: false
    priority: 1000
    actions: [ask_bot]
  - name: urgent
    on: [message.received]
    priority: 100
    when: contains_word(event.text, "urgent")
    actions: [{set_priority: {priority: urgent}}]
`

const validSet2 = `version: 1
rules:
  - name: late
    on: [message.received]
    priority: 100
    actions: [{tag: {add: [late]}}]
  - name: early
    on: [message.received]
    priority: 5
    actions: [{tag: {add: [early]}}]
`

func TestValidSet(t *testing.T) {
	files := []rules.File{
		{Path: "a.yaml", Data: []byte(validSet)},
		{Path: "sub/b.yaml", Data: []byte(validSet2)},
	}
	set, es := compile(t, files)
	if set == nil {
		t.Fatalf("valid set did not load:\n%v", es)
	}
	if len(es) != 0 {
		t.Errorf("warnings: %v", es)
	}

	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Path))
		h.Write(f.Data)
	}
	wantVersion := "sha256:" + hex.EncodeToString(h.Sum(nil))[:12]
	if got := set.Version(); got != wantVersion {
		t.Errorf("Version() = %q, want %q", got, wantVersion)
	}
	if got := rules.Version(files); got != wantVersion {
		t.Errorf("rules.Version = %q, want %q", got, wantVersion)
	}
	if len(wantVersion) != len("sha256:")+12 {
		t.Fatalf("bad want %q", wantVersion)
	}
	// The order of files, a path or a byte changes the version.
	swapped := []rules.File{files[1], files[0]}
	if rules.Version(swapped) == wantVersion {
		t.Errorf("version does not depend on load order")
	}
	renamed := []rules.File{{Path: "x.yaml", Data: files[0].Data}, files[1]}
	if rules.Version(renamed) == wantVersion {
		t.Errorf("version does not depend on paths")
	}

	if got, want := set.Files(), []string{"a.yaml", "sub/b.yaml"}; !slices.Equal(got, want) {
		t.Errorf("Files() = %q, want %q", got, want)
	}
	if got := set.DefaultETA(); got != 7 {
		t.Errorf("DefaultETA() = %d, want 7", got)
	}
	if v, ok := set.Param("threshold"); !ok || v != 0.6 {
		t.Errorf("Param(threshold) = %v, %v", v, ok)
	}
	if tm := set.Team("support"); tm == nil || len(tm.Members) != 1 || tm.Members[0].FirstName != "Anita" || tm.Strategy != "round_robin" {
		t.Errorf("Team(support) = %+v", tm)
	}
	if a := set.Agent("anita"); a == nil || a.Team != "support" {
		t.Errorf("Agent(anita) = %+v", a)
	}

	names := func(rs []*rules.Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	// Priority first, then load order (file, then position); disabled rules
	// are no candidates.
	if got, want := names(set.Candidates("message.received")), []string{"human", "urgent", "late", "early", "bot"}; !slices.Equal(got, want) {
		t.Errorf("Candidates(message.received) = %q, want %q", got, want)
	}
	if got, want := names(set.Candidates("bot.answered")), []string{"low", "bot"}; !slices.Equal(got, want) {
		t.Errorf("Candidates(bot.answered) = %q, want %q", got, want)
	}
	if got := set.Candidates("agent.status"); len(got) != 0 {
		t.Errorf("Candidates(agent.status) = %q, want none", names(got))
	}
	if got, want := names(set.Rules()), []string{"low", "human", "bot", "off", "urgent", "late", "early"}; !slices.Equal(got, want) {
		t.Errorf("Rules() = %q, want %q", got, want)
	}
	if r := set.Rule("off"); r == nil || r.Enabled {
		t.Errorf("Rule(off) = %+v", r)
	}
	if r := set.Rule("human"); r == nil || r.Pos != (rules.Pos{File: "rules/a.yaml", Line: 18, Col: 5}) || !r.Stop || r.Priority != 100 {
		t.Errorf("Rule(human) = %+v", r)
	}
}

// TestLoadDir loads the examples and a directory with subdirectories, test
// files and hidden files, checking which files are read and in what order.
func TestLoadDir(t *testing.T) {
	set, err := rules.Load("../examples/rules", rules.Options{})
	if err != nil {
		t.Fatalf("examples do not load: %v", err)
	}
	if len(set.Warnings()) != 0 {
		t.Errorf("examples warn: %v", set.Warnings())
	}

	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "version: 1\n")
	write("a/z.yml", "version: 1\n")
	write("a_test.yaml", "this is a test file, not rules: [\n")
	write(".hidden.yaml", "broken: [\n")
	write("..data/x.yaml", "broken: [\n")
	write("notes.txt", "not yaml")
	set, err = rules.Load(dir, rules.Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := set.Files(), []string{"a/z.yml", "b.yaml"}; !slices.Equal(got, want) {
		t.Errorf("Files() = %q, want %q", got, want)
	}
	ruleFiles, testFiles, err := rules.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ruleFiles) != 2 || len(testFiles) != 1 || testFiles[0].Path != "a_test.yaml" {
		t.Errorf("ReadDir = %v rule files, %v test files", len(ruleFiles), testFiles)
	}

	write("b.yaml", "version: 1\nbogus: 1\n")
	_, err = rules.Load(dir, rules.Options{})
	es, ok := rules.AsErrors(err)
	if !ok || len(es) != 1 || es[0].Pos.File != filepath.ToSlash(filepath.Join(dir, "b.yaml")) || es[0].Pos.Line != 2 {
		t.Errorf("Load error = %v", err)
	}

	_, err = rules.Load(filepath.Join(dir, "missing"), rules.Options{})
	if _, ok := rules.AsErrors(err); ok || err == nil {
		t.Errorf("Load of a missing directory = %v, want a plain error", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing directory = %v, want ErrNotExist", err)
	}
}
