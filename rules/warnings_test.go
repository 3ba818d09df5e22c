package rules_test

import (
	"testing"

	"github.com/triage-dev/triage/rules"
)

// TestWarnings checks what loads but is probably a mistake. Each set must
// load; its warnings are compared exactly.
func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unreachable after an unconditional stop",
			src: `version: 1
rules:
  - name: later
    on: [message.received]
    actions: [ask_bot]
  - name: catch-all
    on: [message.received, bot.answered]
    priority: 10
    stop: true
    actions: [ask_bot]
  - name: other-type
    on: [agent.replied]
    actions: [{note: {text: x}}]
  - name: on-both
    on: [bot.answered, message.received]
    priority: 10
    actions: [ask_bot]
  - name: before
    on: [message.received]
    priority: 11
    actions: [ask_bot]
`,
			want: []string{
				`rules/a.yaml:3:5: warning: rule "later" can never fire on message.received: rule "catch-all" (rules/a.yaml:6:5) has no condition and stops every message.received event before it`,
				`rules/a.yaml:14:5: warning: rule "on-both" can never fire on message.received: rule "catch-all" (rules/a.yaml:6:5) has no condition and stops every message.received event before it`,
				`rules/a.yaml:14:5: warning: rule "on-both" can never fire on bot.answered: rule "catch-all" (rules/a.yaml:6:5) has no condition and stops every bot.answered event before it`,
			},
		},
		{
			name: "when true is no condition",
			src: `version: 1
rules:
  - name: stopper
    on: [message.received]
    when: true
    stop: true
    actions: [ask_bot]
  - name: after
    on: [message.received]
    actions: [ask_bot]
`,
			want: []string{
				`rules/a.yaml:8:5: warning: rule "after" can never fire on message.received: rule "stopper" (rules/a.yaml:3:5) has no condition and stops every message.received event before it`,
			},
		},
		{
			name: "no warning after a conditional or disabled stop",
			src: `version: 1
rules:
  - name: conditional
    on: [message.received]
    when: event.kind == "text"
    stop: true
    priority: 5
    actions: [ask_bot]
  - name: disabled
    on: [message.received]
    stop: true
    enabled: false
    priority: 4
    actions: [ask_bot]
  - name: not-stopping
    on: [message.received]
    priority: 3
    actions: [ask_bot]
  - name: reachable
    on: [message.received]
    actions: [ask_bot]
`,
			want: nil,
		},
		{
			name: "unused param, list and macro",
			src: `version: 1
params:
  used: 1
  unused_param: 2
  default_eta_minutes: 5
lists:
  used_list: [a]
  unused_list: [b]
macros:
  used_macro: contains_any(event.text, lists.used_list)
  unused_macro: event.text == ""
rules:
  - name: r
    on: [message.received]
    when: used_macro && conversation.bot_turns < params.used
    actions: [ask_bot]
`,
			want: []string{
				`rules/a.yaml:4:3: warning: param "unused_param" is never used`,
				`rules/a.yaml:8:3: warning: list "unused_list" is never used`,
				`rules/a.yaml:11:3: warning: macro "unused_macro" is never used`,
			},
		},
		{
			name: "used only by an unused macro is unused",
			src: `version: 1
params:
  limit: 3
lists:
  words: [a]
macros:
  inner: contains_any(event.text, lists.words) && conversation.bot_turns > params.limit
  outer: inner
`,
			want: []string{
				`rules/a.yaml:3:3: warning: param "limit" is never used`,
				`rules/a.yaml:5:3: warning: list "words" is never used`,
				`rules/a.yaml:7:3: warning: macro "inner" is never used`,
				`rules/a.yaml:8:3: warning: macro "outer" is never used`,
			},
		},
		{
			name: "used through templates, macros in macros and other functions",
			src: `version: 1
params:
  greeting: Hello
  minutes: 5
lists:
  topics: [refund]
  words: [help]
macros:
  inner: contains_word(event.topic, "x") || contains_any(event.topic, lists.topics)
  outer: inner && minutes_since(conversation.opened_at) > params.minutes
  name: 'contact.name != "" ? contact.name : "there"'
rules:
  - name: r
    on: [message.received]
    when: outer
    actions:
      - reply: {text: "{{ params.greeting }}, {{ name }}"}
      - tag: {add: ['{{ contains_any(event.text, lists.words) ? "help" : "other" }}']}
`,
			want: nil,
		},
		{
			name: "default_eta_minutes is never unused",
			src: `version: 1
params:
  default_eta_minutes: 12
`,
			want: nil,
		},
		{
			name: "team nobody assigns to",
			src: `version: 1
teams:
  support:
    members: [{id: anita}]
  billing:
    members: [{id: dev}]
  sales:
    members: [{id: sam}]
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {team: support}
      - assign: {agent: dev}
`,
			want: []string{
				`rules/a.yaml:7:3: warning: team "sales": no rule assigns to it`,
			},
		},
		{
			name: "a team chosen by a template may be any team",
			src: `version: 1
teams:
  support:
    members: [{id: anita}]
  billing:
    members: [{id: dev}]
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {team: '{{ event.topic == "refund" ? "billing" : "support" }}'}
`,
			want: nil,
		},
		{
			name: "assignment by a disabled rule still counts",
			src: `version: 1
teams:
  support:
    members: [{id: anita}]
rules:
  - name: r
    on: [message.received]
    enabled: false
    actions:
      - assign: {team: support}
`,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, es := compile(t, one(tt.src))
			if set == nil {
				t.Fatalf("did not load:\n%v", es)
			}
			for _, e := range es {
				if e.Severity != rules.SeverityWarning {
					t.Errorf("warnings hold an error: %v", e)
				}
			}
			diffLines(t, "warnings", strs(es, rules.SeverityWarning), tt.want)
		})
	}
}

// TestWarningsKeptWithErrors: when a set fails, its warnings are among the
// problems, after sorting, so `triage check` shows them together.
func TestWarningsKeptWithErrors(t *testing.T) {
	_, es := compile(t, one(`version: 1
params:
  unused: 1
rules:
  - name: r
    on: [message.recieved]
    actions: [ask_bot]
`))
	want := []string{
		`rules/a.yaml:3:3: warning: param "unused" is never used`,
		`rules/a.yaml:6:10: unknown event type "message.recieved" (did you mean message.received?)`,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	diffLines(t, "problems", got, want)
}
