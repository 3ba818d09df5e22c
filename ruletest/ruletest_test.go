package ruletest_test

import (
	"strings"
	"testing"

	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/ruletest"
)

const ruleYAML = `version: 1
teams:
  support:
    members:
      - {id: anita, name: Anita Rao}
rules:
  - name: human
    on: [message.received]
    when: contains_any(event.text, ["human"])
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
      - reply: {text: "Bringing in {{ assignee.first_name }}."}
  - name: bad-template
    on: [message.received]
    when: event.text == "template"
    actions:
      - note: {text: "{{ conversation.tags[9] }}"}
  - name: boom
    on: [bot.answered]
    when: conversation.tags[3] == "x"
    actions:
      - note: {text: never}
`

func compile(t *testing.T) *rules.Set {
	t.Helper()
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(ruleYAML)}}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "tests: []\nextra: 1\n", `t_test.yaml:2:1: unknown key "extra" in a test file`},
		{"no tests", "defaults: {}\n", "t_test.yaml:1:1: a test file needs tests:"},
		{"unknown case key", "tests:\n  - name: a\n    evnts: []\n", `t_test.yaml:3:5: unknown key "evnts" in a test`},
		{"no events", "tests:\n  - name: a\n", `t_test.yaml:2:5: test "a" needs events`},
		{"unknown event field", "tests:\n  - name: a\n    events:\n      - {message: hi, txt: x}\n", `t_test.yaml:4:9: event 1: unknown field "txt"`},
		{"no type", "tests:\n  - name: a\n    events:\n      - {text: hi}\n", "t_test.yaml:4:9: event 1 needs a type"},
		{"bad after", "tests:\n  - name: a\n    events:\n      - {message: hi, after: soon}\n", "t_test.yaml:4:30: after must be a duration"},
		{"unknown expect key", "tests:\n  - name: a\n    events:\n      - message: hi\n        expect: {matchd: []}\n", `t_test.yaml:5:18: unknown key "matchd" in expect`},
		{"expect conversation field", "tests:\n  - name: a\n    events:\n      - message: hi\n        expect: {conversation: {asignee: x}}\n", `t_test.yaml:5:32: conversation: unknown field "asignee"`},
		{"two action types", "tests:\n  - name: a\n    events:\n      - message: hi\n        expect: {actions: [{reply: {}, note: {}}]}\n", "t_test.yaml:5:27: actions: an expected action names one action type"},
		{"bad agent status", "tests:\n  - name: a\n    agents: {ben: busy}\n    events: [{message: hi}]\n", "t_test.yaml:3:19: agent status must be online, away or offline"},
		{"state with an impossible value", "tests:\n  - name: a\n    state: {handler: robot}\n    events: [{message: hi}]\n", `t_test.yaml:3:12: state: handler "robot" is not one of [bot human]`},
		{"state with a wrong type", "tests:\n  - name: a\n    state: {tags: x}\n    events: [{message: hi}]\n", `t_test.yaml:3:12: state: tags: want []string, not string`},
		{"a shorthand in defaults", "defaults: {message: hi}\ntests:\n  - {name: a, events: [{message: hi}]}\n", `t_test.yaml:1:11: defaults takes event fields; message: is a shorthand`},
		{"message and bot in one step", "tests:\n  - name: a\n    events:\n      - {message: hi, bot: hello}\n", `t_test.yaml:4:9: event 1: message: and bot: are two events`},
		{"message with type", "tests:\n  - name: a\n    events:\n      - {message: hi, type: agent.replied}\n", `t_test.yaml:4:9: event 1: message: and bot: set the type and the text already`},
		{"an invalid matches", "tests:\n  - name: a\n    events:\n      - message: hi\n        expect: {actions: [{reply: {text: {matches: \"[a-\"}}}]}\n", `t_test.yaml:5:27: actions: matches: error parsing regexp`},
		{"duplicate test", "tests:\n  - {name: a, events: [{message: hi}]}\n  - {name: a, events: [{message: hi}]}\n", `t_test.yaml:3:5: test "a" defined twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ruletest.Parse("t_test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error:\n%s\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	set := compile(t)
	tests := []struct {
		name  string
		yaml  string
		fails []string // substrings of the failures, in order; none: passes
	}{
		{"passes", `
tests:
  - name: ok
    events:
      - message: "a HUMAN please"
        expect:
          matched: [human]
          actions:
            - escalate: {reason: keyword}
            - assign: {team: support}
              result: {agent: anita}
            - reply: {text: "Bringing in Anita."}
              outcome: queued
          conversation: {handler: human, assignee: anita, tags: []}
`, nil},
		{"wrong matched", `
tests:
  - name: x
    events:
      - message: "hello"
        expect: {matched: [human]}
`, []string{`t_test.yaml:6:18: event 1 (message.received): matched rules differ`}},
		{"wrong param", `
tests:
  - name: x
    events:
      - message: "human"
        expect:
          actions_include:
            - reply: {text: "Bringing in Ben."}
`, []string{"no matching action (in order)"}},
		{"contains matcher", `
tests:
  - name: x
    events:
      - message: "human"
        expect:
          actions_include:
            - reply: {text: {contains: "Anita"}}
            - reply: {text: {matches: "^Bringing"}}
`, []string{"no matching action"}}, // the second reply does not exist: in order means once each
		{"wrong outcome", `
tests:
  - name: x
    events:
      - message: "human"
        after: 0s
        expect:
          actions_include:
            - reply: {outcome: skipped}
`, []string{"no matching action"}},
		{"unexpected run-time error fails", `
tests:
  - name: x
    events:
      - bot: "hi"
        confidence: 0.9
`, []string{"unexpected run-time errors"}},
		{"expected run-time error passes", `
tests:
  - name: x
    events:
      - bot: "hi"
        confidence: 0.9
        expect: {errors: [boom], matched: []}
`, nil},
		{"clock and window", `
tests:
  - name: x
    events:
      - message: "hello"
      - bot: "late"
        confidence: 0.9
        after: 25h
        expect: {conversation: {window_open: false}, errors: [boom]}
`, nil},
		{"duplicate ids", `
tests:
  - name: x
    events:
      - {id: m1, message: "human"}
      - {id: m1, message: "human", expect: {duplicate: true}}
`, nil},
		{"state seeds the conversation", `
tests:
  - name: x
    state: {handler: human, tags: [vip]}
    events:
      - message: "human"
        expect: {matched: [human], conversation: {tags: [vip]}}
`, nil},
		{"no assignments as []", `
tests:
  - name: x
    events:
      - message: "hello"
        expect: {assignments: []}
`, nil},
		{"after 0s keeps the clock", `
tests:
  - name: x
    start: 2026-03-02T08:00:00Z
    events:
      - message: "hello"
        expect: {conversation: {opened_at: "2026-03-02T08:00:00Z"}}
      - message: "again"
        after: 0s
        expect: {conversation: {last_customer_message_at: "2026-03-02T08:00:00Z"}}
      - message: "later"
        expect: {conversation: {last_customer_message_at: "2026-03-02T08:01:00Z"}}
`, nil},
		{"an unexpected failed action fails the test", `
tests:
  - name: x
    events:
      - message: "template"
`, []string{"action 1 (bad-template/note) failed unexpectedly"}},
		{"an expected failed action passes", `
tests:
  - name: x
    events:
      - message: "template"
        expect:
          actions: [{note: {}, outcome: failed, error: {contains: "out of range"}}]
`, nil},
		{"failures keep && readable", `
tests:
  - name: x
    events:
      - message: "hello"
        expect: {matched: ["a && b"]}
`, []string{`matched names "a && b", which is not a rule of this rule set`, `want: ["a && b"]`}},
		{"misspelt rule and action names fail instead of passing vacuously", `
tests:
  - name: x
    events:
      - message: "hello"
        expect:
          not_matched: [humann]
          actions_include: [{escalte: {}}]
`, []string{`not_matched names "humann", which is not a rule`, `actions_include names "escalte", which is not an action`, "no matching action"}},
		{"invalid event fails", `
tests:
  - name: x
    events:
      - {type: agent.status, agent: anita}
`, []string{"agent.status needs status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ruletest.Parse("t_test.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			res := s.Run(set)
			var got []string
			for _, r := range res {
				for _, f := range r.Failures {
					got = append(got, f.String())
				}
			}
			if len(got) != len(tt.fails) {
				t.Fatalf("failures:\n%s\nwant %d containing %q", strings.Join(got, "\n"), len(tt.fails), tt.fails)
			}
			for i, want := range tt.fails {
				if !strings.Contains(got[i], want) {
					t.Errorf("failure %d:\n%s\nwant it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

// FuzzParse checks that no test file, however broken, panics the parser,
// and that errors always carry a position.
func FuzzParse(f *testing.F) {
	f.Add([]byte("tests:\n  - name: a\n    events:\n      - message: hi\n        expect: {matched: []}\n"))
	f.Add([]byte("defaults: {contact: {id: x}}\ntests: [{name: b, agents: {a: online}, state: {bot_turns: 2}, events: [{bot: x, confidence: 0.2, after: 5m}]}]\n"))
	f.Add([]byte("tests:\n  - {name: a, events: [{type: agent.status, agent: a, status: away, expect: {actions: [{reply: {text: {contains: x}}, outcome: queued}]}}]}\n"))
	f.Add([]byte("- just\n- a list\n"))
	f.Add([]byte("tests: [&a {name: x, events: *a}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ruletest.Parse("f_test.yaml", data)
		if err == nil {
			return
		}
		es, ok := rules.AsErrors(err)
		if !ok {
			t.Fatalf("error is not rules.Errors: %v", err)
		}
		for _, e := range es {
			if e.Pos.File != "f_test.yaml" || e.Pos.Line < 1 {
				t.Fatalf("error without a position: %v", e)
			}
		}
	})
}
