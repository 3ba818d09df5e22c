package engine_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the event clock's origin in these tests.
var t0 = time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// compile builds a rule set from inline YAML, one string per file, in load
// order (r1.yaml, r2.yaml, ...). "version: 1" is prepended to each.
func compile(t testing.TB, files ...string) *rules.Set {
	t.Helper()
	var fs []rules.File
	for i, f := range files {
		fs = append(fs, rules.File{Path: fmt.Sprintf("r%d.yaml", i+1), Data: []byte("version: 1\n" + f)})
	}
	set, err := rules.Compile(fs, rules.Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return set
}

// fields are expected conversation fields by their JSON name.
type fields map[string]any

// act is an expected action record. params is compared only when non-nil;
// result is always compared; err is a substring of the error ("" means
// no error).
type act struct {
	rule, typ, outcome, reason string
	err                        string
	params                     map[string]any
	result                     map[string]any
}

// ruleErr is an expected entry of decision.Errors.
type ruleErr struct{ rule, contains string }

type step struct {
	ev       schemas.Event
	dup      bool                 // the event must be a duplicate; only check runs
	matched  []string             // always compared; nil is none
	acts     []act                // compared when non-nil ([]act{} is none)
	errs     []ruleErr            // always compared; nil is none
	conv     fields               // compared when non-nil
	noConv   bool                 // the decision must carry no conversation
	assigned []schemas.Assignment // always compared; nil is none
	check    func(t *testing.T, e *engine.Engine, d schemas.Decision)
}

// prepare fills the boring fields: the time (a minute per step) and the
// conversation (c1); "-" as the conversation means none.
func prepare(i int, ev schemas.Event) schemas.Event {
	if ev.At.IsZero() {
		ev.At = at(time.Duration(i) * time.Minute)
	}
	switch {
	case ev.Conversation == "-":
		ev.Conversation = ""
	case ev.Conversation == "" && ev.Type != schemas.AgentStatus:
		ev.Conversation = "c1"
	}
	return ev
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return string(b)
}

func runSteps(t *testing.T, set *rules.Set, e *engine.Engine, steps []step) {
	t.Helper()
	for i, s := range steps {
		ev := prepare(i, s.ev)
		d, err := e.Process(set, &ev)
		if err != nil {
			t.Fatalf("step %d (%s): Process: %v", i, ev.ID, err)
		}
		checkStep(t, fmt.Sprintf("step %d (%s %s)", i, ev.ID, ev.Type), e, s, d)
	}
}

func checkStep(t *testing.T, where string, e *engine.Engine, s step, d schemas.Decision) {
	t.Helper()
	if d.Duplicate != s.dup {
		t.Fatalf("%s: duplicate = %v, want %v", where, d.Duplicate, s.dup)
	}
	if s.dup {
		if s.check != nil {
			s.check(t, e, d)
		}
		return
	}
	if got, want := d.Matched, s.matched; !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
		t.Errorf("%s: matched = %q, want %q", where, got, want)
	}
	if s.acts != nil {
		checkActions(t, where, d.Actions, s.acts)
	}
	checkErrors(t, where, d.Errors, s.errs)
	if got, want := d.Assignments, s.assigned; !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
		t.Errorf("%s: assignments = %+v, want %+v", where, got, want)
	}
	if s.noConv && d.Conversation != nil {
		t.Errorf("%s: decision carries conversation %+v, want none", where, *d.Conversation)
	}
	if s.conv != nil {
		if d.Conversation == nil {
			t.Fatalf("%s: decision has no conversation", where)
		}
		checkFields(t, where, d.Conversation, s.conv)
	}
	if s.check != nil {
		s.check(t, e, d)
	}
}

func checkActions(t *testing.T, where string, got []schemas.ActionRecord, want []act) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d actions, want %d:\n got %s", where, len(got), len(want), jsonString(t, got))
		return
	}
	for i, w := range want {
		g := got[i]
		if g.Rule != w.rule || g.Type != w.typ || g.Outcome != w.outcome || g.Reason != w.reason {
			t.Errorf("%s: action %d = {rule %s, type %s, outcome %s, reason %q}, want {rule %s, type %s, outcome %s, reason %q}",
				where, i, g.Rule, g.Type, g.Outcome, g.Reason, w.rule, w.typ, w.outcome, w.reason)
		}
		switch {
		case w.err == "" && g.Error != "":
			t.Errorf("%s: action %d (%s): unexpected error %q", where, i, g.Type, g.Error)
		case w.err != "" && !strings.Contains(g.Error, w.err):
			t.Errorf("%s: action %d (%s): error %q, want one containing %q", where, i, g.Type, g.Error, w.err)
		}
		if w.params != nil {
			if gp, wp := jsonString(t, g.Params), jsonString(t, w.params); gp != wp {
				t.Errorf("%s: action %d (%s): params %s, want %s", where, i, g.Type, gp, wp)
			}
		}
		if gr, wr := jsonString(t, g.Result), jsonString(t, w.result); gr != wr {
			t.Errorf("%s: action %d (%s): result %s, want %s", where, i, g.Type, gr, wr)
		}
	}
}

func checkErrors(t *testing.T, where string, got []schemas.RuleError, want []ruleErr) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: errors is nil, want a (possibly empty) list", where)
	}
	if len(got) != len(want) {
		t.Errorf("%s: errors = %+v, want %+v", where, got, want)
		return
	}
	for i, w := range want {
		if got[i].Rule != w.rule || !strings.Contains(got[i].Error, w.contains) {
			t.Errorf("%s: error %d = %+v, want rule %q with an error containing %q", where, i, got[i], w.rule, w.contains)
		}
	}
}

// checkFields compares the conversation's JSON fields with the expected
// ones: a field that is absent from the JSON (a zero time) compares as null.
func checkFields(t *testing.T, where string, c *schemas.Conversation, want fields) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(jsonString(t, c)), &m); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		g := "null"
		if raw, ok := m[k]; ok {
			g = string(raw)
		}
		if ws := jsonString(t, w); g != ws {
			t.Errorf("%s: conversation.%s = %s, want %s", where, k, g, ws)
		}
	}
}

func conversation(t *testing.T, e *engine.Engine, id string) engine.Conv {
	t.Helper()
	c, ok := e.Conversation(id)
	if !ok {
		t.Fatalf("conversation %s not found", id)
	}
	return c
}

// Events, with the boring fields left to prepare.

func msg(id, conv, text string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.MessageReceived, Conversation: conv, Text: text, Kind: "text"}
}

func bot(id, conv, text string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.BotAnswered, Conversation: conv, Text: text, Confidence: 0.9}
}

func replied(id, conv, agent string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.AgentReplied, Conversation: conv, Agent: agent, Text: "On it."}
}

func resolved(id, conv string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.ConversationResolved, Conversation: conv}
}

func assigned(id, conv, agent string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.ConversationAssigned, Conversation: conv, Agent: agent}
}

func agentStatus(id, agent, status string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.AgentStatus, Agent: agent, Status: status}
}

func atTime(ev schemas.Event, d time.Duration) schemas.Event {
	ev.At = at(d)
	return ev
}

func withContact(ev schemas.Event, c schemas.Contact) schemas.Event {
	ev.Contact = &c
	return ev
}

func tagged(rule string) act { return act{rule: rule, typ: "tag", outcome: "applied"} }

// traces records the rule names the engine evaluated, event by event.
type traces struct{ names []string }

func (tr *traces) attach(e *engine.Engine) {
	e.Trace = func(rt engine.RuleTrace) { tr.names = append(tr.names, rt.Rule.Name) }
}

func (tr *traces) take() []string {
	out := tr.names
	tr.names = nil
	return out
}

const supportTeam = `
teams:
  support:
    strategy: round_robin
    members:
      - {id: anita, name: Anita Rao, skills: [billing], languages: [en, hi]}
      - {id: ben, name: Ben Okafor, languages: [en]}
      - {id: carla, name: Carla Mendes, languages: [en, es]}
`

type engineCase struct {
	name  string
	files []string
	setup func(t *testing.T, e *engine.Engine)
	steps []step
}

func runCases(t *testing.T, cases []engineCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := compile(t, tc.files...)
			e := engine.New()
			if tc.setup != nil {
				tc.setup(t, e)
			}
			runSteps(t, set, e, tc.steps)
		})
	}
}

// TestOrder covers section 3's order, matching and stop.
func TestOrder(t *testing.T) {
	stopTrace := &traces{}
	var skipped []string
	runCases(t, []engineCase{
		{
			name: "priority highest first, ties by file load order then position",
			files: []string{`
rules:
  - {name: zeta, on: [message.received], actions: [{tag: {add: [zeta]}}]}
  - {name: bottom, on: [message.received], priority: -5, actions: [{tag: {add: [bottom]}}]}
  - {name: yak, on: [message.received], priority: 10, actions: [{tag: {add: [yak]}}]}
  - {name: xray, on: [message.received], actions: [{tag: {add: [xray]}}]}
`, `
rules:
  - {name: mango, on: [message.received], priority: 10, actions: [{tag: {add: [mango]}}]}
  - {name: apple, on: [message.received], actions: [{tag: {add: [apple]}}]}
  - {name: kiwi, on: [message.received], priority: 20, actions: [{tag: {add: [kiwi]}}]}
`},
			steps: []step{{
				ev:      msg("m1", "", "hello"),
				matched: []string{"kiwi", "yak", "mango", "zeta", "xray", "apple", "bottom"},
				acts:    []act{tagged("kiwi"), tagged("yak"), tagged("mango"), tagged("zeta"), tagged("xray"), tagged("apple"), tagged("bottom")},
				conv:    fields{"tags": []string{"kiwi", "yak", "mango", "zeta", "xray", "apple", "bottom"}},
			}},
		},
		{
			name: "all matching rules fire until a matching stop rule has fired",
			files: []string{`
rules:
  - {name: first, on: [message.received], priority: 30, actions: [{tag: {add: [first]}}]}
  - name: maybe-stop
    on: [message.received]
    priority: 20
    stop: true
    when: event.text == "halt"
    actions:
      - tag: {add: [halted]}
      - note: {text: stopped here}
  - {name: middle, on: [message.received], priority: 10, actions: [{tag: {add: [middle]}}]}
  - {name: last, on: [message.received], actions: [{tag: {add: [last]}}]}
`},
			setup: func(t *testing.T, e *engine.Engine) {
				stopTrace.attach(e)
				e.Skipped = func(r, by *rules.Rule) { skipped = append(skipped, r.Name+" by "+by.Name) }
			},
			steps: []step{
				{
					ev:      msg("m1", "", "go"),
					matched: []string{"first", "middle", "last"},
					conv:    fields{"tags": []string{"first", "middle", "last"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						// A stop rule that does not match stops nothing.
						if got, want := stopTrace.take(), []string{"first", "maybe-stop", "middle", "last"}; !reflect.DeepEqual(got, want) {
							t.Errorf("evaluated %q, want %q", got, want)
						}
						if skipped != nil {
							t.Errorf("skipped %q, want none", skipped)
						}
					},
				},
				{
					ev:      msg("m2", "", "halt"),
					matched: []string{"first", "maybe-stop"},
					acts: []act{tagged("first"), tagged("maybe-stop"),
						{rule: "maybe-stop", typ: "note", outcome: "applied", params: map[string]any{"text": "stopped here"}}},
					conv: fields{"tags": []string{"first", "middle", "last", "halted"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if got, want := stopTrace.take(), []string{"first", "maybe-stop"}; !reflect.DeepEqual(got, want) {
							t.Errorf("evaluated %q, want %q: nothing after a stop rule that fired", got, want)
						}
						if want := []string{"middle by maybe-stop", "last by maybe-stop"}; !reflect.DeepEqual(skipped, want) {
							t.Errorf("skipped %q, want %q", skipped, want)
						}
						notes := conversation(t, e, "c1").Notes
						if len(notes) != 1 || notes[0].Text != "stopped here" || notes[0].Author != "rule:maybe-stop" {
							t.Errorf("notes = %+v, want one by rule:maybe-stop", notes)
						}
					},
				},
			},
		},
		{
			name: "disabled rules and rules for other event types never run",
			files: []string{supportTeam + `
rules:
  - {name: "off", on: [message.received, bot.answered], enabled: false, actions: [{tag: {add: ["off"]}}]}
  - {name: bot-only, on: [bot.answered], actions: [{tag: {add: [bot-only]}}]}
  - {name: both, on: [message.received, bot.answered], actions: [{tag: {add: [both]}}]}
  - {name: agent-only, on: [agent.replied], priority: 50, actions: [{tag: {add: [agent-only]}}]}
`},
			steps: []step{
				{ev: msg("m1", "", "hi"), matched: []string{"both"}, acts: []act{tagged("both")}, conv: fields{"tags": []string{"both"}}},
				{ev: bot("b1", "", "hello"), matched: []string{"bot-only", "both"}, conv: fields{"tags": []string{"both", "bot-only"}}},
				{ev: replied("a1", "", "ben"), matched: []string{"agent-only"}, conv: fields{"tags": []string{"both", "bot-only", "agent-only"}}},
			},
		},
	})
}

// TestStateFlowsForward covers section 3's state flowing forward, each when
// evaluated once, and run-time errors in expressions and templates.
func TestStateFlowsForward(t *testing.T) {
	flowTrace := &traces{}
	runCases(t, []engineCase{
		{
			name: "later rules see tags, priority, handler and assignee set earlier; each when once",
			files: []string{supportTeam + `
rules:
  - name: early
    on: [message.received]
    priority: 40
    when: conversation.priority == "high"
    actions: [{tag: {add: [early]}}]
  - name: triage
    on: [message.received]
    priority: 30
    actions:
      - tag: {add: [vip]}
      - set_priority: {priority: high}
      - escalate: {reason: vip}
      - assign: {team: support}
      - reply: {text: "{{ assignee.first_name }} sees {{ conversation.priority }}/{{ conversation.handler }}/{{ conversation.tags }}"}
  - name: sees-it
    on: [message.received]
    priority: 20
    when: >-
      "vip" in conversation.tags && conversation.priority == "high" &&
      conversation.handler == "human" && conversation.escalated &&
      conversation.assignee == "anita" && assignee.first_name == "Anita"
    actions: [{note: {text: "saw {{ assignee.name }}"}}]
  - name: sees-old
    on: [message.received]
    priority: 10
    when: conversation.priority == "normal" || conversation.handler == "bot" || !("vip" in conversation.tags)
    actions: [{tag: {add: [stale]}}]
`},
			setup: func(t *testing.T, e *engine.Engine) { flowTrace.attach(e) },
			steps: []step{{
				ev:      msg("m1", "", "hello"),
				matched: []string{"triage", "sees-it"},
				acts: []act{
					tagged("triage"),
					{rule: "triage", typ: "set_priority", outcome: "applied", params: map[string]any{"priority": "high"}},
					{rule: "triage", typ: "escalate", outcome: "applied", params: map[string]any{"reason": "vip"}},
					{rule: "triage", typ: "assign", outcome: "applied", result: map[string]any{"agent": "anita"}},
					{rule: "triage", typ: "reply", outcome: "queued", params: map[string]any{"text": "Anita sees high/human/vip"}},
					{rule: "sees-it", typ: "note", outcome: "applied", params: map[string]any{"text": "saw Anita Rao"}},
				},
				conv: fields{"tags": []string{"vip"}, "priority": "high", "handler": "human", "assignee": "anita", "team": "support", "escalated": true, "escalation_reason": "vip"},
				check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
					// early would match if its when ran again after triage.
					if got, want := flowTrace.take(), []string{"early", "triage", "sees-it", "sees-old"}; !reflect.DeepEqual(got, want) {
						t.Errorf("evaluated %q, want each when once: %q", got, want)
					}
				},
			}},
		},
		{
			name: "a run-time error in a when is no match, recorded under the rule; later rules run",
			files: []string{`
rules:
  - name: bad
    on: [message.received]
    priority: 10
    stop: true
    when: conversation.tags[3] == "x"
    actions: [{tag: {add: [bad]}}]
  - name: bad-template
    on: [message.received]
    priority: 5
    actions:
      - reply: {text: "fourth tag: {{ conversation.tags[3] }}"}
      - tag: {add: [after-template]}
  - {name: later, on: [message.received], actions: [{tag: {add: [later]}}]}
`},
			steps: []step{
				{
					ev:      msg("m1", "", "hello"),
					matched: []string{"bad-template", "later"},
					errs:    []ruleErr{{rule: "bad", contains: "out of range"}},
					acts: []act{
						{rule: "bad-template", typ: "reply", outcome: "failed", err: "out of range"},
						tagged("bad-template"),
						tagged("later"),
					},
					conv: fields{"tags": []string{"after-template", "later"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if len(d.Outbound) != 0 {
							t.Errorf("a failed reply queued outbound work: %+v", d.Outbound)
						}
					},
				},
				{
					// With four tags the same expressions work.
					ev:      msg("m2", "", "again"),
					matched: []string{"bad-template", "later"},
					errs:    []ruleErr{{rule: "bad", contains: "out of range"}},
				},
			},
		},
	})
}

// TestEventEffects covers section 5's effects of an event before the rules.
func TestEventEffects(t *testing.T) {
	runCases(t, []engineCase{
		{
			name: "message.received counts, sets last_customer_message_at, pending to open",
			files: []string{supportTeam + `
rules:
  - name: second
    on: [message.received]
    when: >-
      conversation.messages == 2 && conversation.status == "open" && conversation.window_open &&
      conversation.last_customer_message_at == event.at
    actions: [{tag: {add: [second]}}]
  - name: pend
    on: [agent.replied]
    actions: [{set_status: {status: pending}}]
`},
			steps: []step{
				{ev: atTime(msg("m1", "", "hi"), 0), conv: fields{"messages": 1, "last_customer_message_at": at(0), "window_open": true, "status": "open"}},
				{ev: atTime(replied("a1", "", "ben"), time.Minute), matched: []string{"pend"},
					conv: fields{"status": "pending", "messages": 1, "last_customer_message_at": at(0)}},
				{ev: atTime(msg("m2", "", "thanks"), 5*time.Minute), matched: []string{"second"},
					conv: fields{"messages": 2, "last_customer_message_at": at(5 * time.Minute), "status": "open", "tags": []string{"second"}}},
			},
		},
		{
			name: "message.received reopens a resolved conversation",
			files: []string{supportTeam + `
rules:
  - name: reopened
    on: [message.received]
    when: >-
      conversation.status == "open" && conversation.handler == "bot" &&
      conversation.bot_turns == 0 && !conversation.escalated && conversation.messages == 3
    actions: [{tag: {add: [reopened]}}]
  - name: handoff
    on: [message.received]
    when: event.text == "human"
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
`},
			steps: []step{
				{ev: msg("m1", "", "hi")},
				{ev: msg("m2", "", "human"), matched: []string{"handoff"}, conv: fields{"assignee": "anita", "handler": "human", "escalated": true}},
				{ev: resolved("r1", ""), conv: fields{"status": "resolved", "handler": "bot", "escalated": false},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("anita").Open; open != 0 {
							t.Errorf("anita has %d open conversations after the resolution, want 0", open)
						}
					}},
				// An agent writing into the resolved conversation hands it to humans.
				{ev: replied("a1", "", "anita"), conv: fields{"status": "resolved", "handler": "human"}},
				{ev: msg("m3", "", "one more thing"), matched: []string{"reopened"},
					conv: fields{"status": "open", "handler": "bot", "bot_turns": 0, "escalated": false, "messages": 3, "assignee": ""},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						// The resolution already released anita; reopening must not release her again.
						if open := e.Agent("anita").Open; open != 0 {
							t.Errorf("anita has %d open conversations, want 0", open)
						}
					}},
			},
		},
		{
			name: "agent.replied: first response once, last agent message, human handler, assignee",
			files: []string{supportTeam + `
rules:
  - name: first-reply
    on: [agent.replied]
    when: conversation.first_response_at == event.at
    actions: [{tag: {add: [first-reply]}}]
  - name: replier-owns-it
    on: [agent.replied]
    when: conversation.handler == "human" && conversation.assignee == event.agent && conversation.team == "support"
    actions: [{note: {text: "{{ assignee.first_name }} owns it"}}]
`},
			steps: []step{
				{ev: atTime(msg("m1", "", "hi"), 0), conv: fields{"handler": "bot", "first_response_at": nil, "last_agent_message_at": nil}},
				{ev: atTime(replied("a1", "", "ben"), 3*time.Minute), matched: []string{"first-reply", "replier-owns-it"},
					acts: []act{tagged("first-reply"), {rule: "replier-owns-it", typ: "note", outcome: "applied", params: map[string]any{"text": "Ben owns it"}}},
					conv: fields{"first_response_at": at(3 * time.Minute), "last_agent_message_at": at(3 * time.Minute), "handler": "human", "assignee": "ben", "team": "support"},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("ben").Open; open != 1 {
							t.Errorf("ben has %d open conversations, want 1", open)
						}
					}},
				{ev: atTime(replied("a2", "", "anita"), 7*time.Minute),
					conv: fields{"first_response_at": at(3 * time.Minute), "last_agent_message_at": at(7 * time.Minute), "handler": "human", "assignee": "ben"}},
			},
		},
		{
			name: "agent.status changes eligibility",
			files: []string{supportTeam + `
rules:
  - name: route
    on: [message.received]
    when: conversation.assignee == ""
    actions: [{assign: {team: support}}]
  - name: status-seen
    on: [agent.status]
    when: event.agent == "anita" && event.status == "away"
    actions: [{tag: {add: [never]}}]
`},
			steps: []step{
				{ev: agentStatus("s1", "anita", "away"), matched: []string{"status-seen"}, noConv: true,
					acts: []act{{rule: "status-seen", typ: "tag", outcome: "skipped", reason: "no_conversation"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if st := e.Agent("anita").Status; st != "away" {
							t.Errorf("anita is %s, want away", st)
						}
					}},
				{ev: msg("m1", "c1", "hi"), matched: []string{"route"},
					acts: []act{{rule: "route", typ: "assign", outcome: "applied", result: map[string]any{"agent": "ben"}}}},
				{ev: agentStatus("s2", "anita", "online")},
				{ev: msg("m2", "c2", "hi"), matched: []string{"route"}, conv: fields{"assignee": "carla"}},
				{ev: msg("m3", "c3", "hi"), matched: []string{"route"}, conv: fields{"assignee": "anita"}},
				{ev: agentStatus("s3", "ben", "offline")},
				{ev: msg("m4", "c4", "hi"), matched: []string{"route"}, conv: fields{"assignee": "carla"}},
				{ev: agentStatus("s4", "nobody", "online"), errs: []ruleErr{{rule: "", contains: "nobody"}}},
			},
		},
		{
			name: "conversation.assigned and conversation.resolved",
			files: []string{supportTeam + `
rules:
  - name: by-hand
    on: [conversation.assigned]
    when: conversation.assignee == "ben" && assignee.first_name == "Ben" && conversation.team == "support"
    actions: [{tag: {add: [by-hand]}}]
  - name: closed
    on: [conversation.resolved]
    when: conversation.status == "resolved"
    actions: [{tag: {add: [closed]}}]
`},
			steps: []step{
				{ev: msg("m1", "", "hi"), conv: fields{"assignee": "", "team": ""}},
				{ev: assigned("as1", "", "ben"), matched: []string{"by-hand"}, conv: fields{"assignee": "ben", "team": "support"},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("ben").Open; open != 1 {
							t.Errorf("ben has %d open conversations, want 1", open)
						}
					}},
				{ev: resolved("r1", ""), matched: []string{"closed"}, conv: fields{"status": "resolved", "tags": []string{"by-hand", "closed"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("ben").Open; open != 0 {
							t.Errorf("ben has %d open conversations after the resolution, want 0", open)
						}
					}},
			},
		},
		{
			name: "contact.opted_out and opted_in flip contact.opted_out",
			files: []string{`
rules:
  - name: opted-out
    on: [message.received, contact.opted_out, contact.opted_in]
    when: contact.opted_out
    actions: [{tag: {add: [no-marketing]}}]
  - name: opted-in
    on: [contact.opted_in]
    when: "!contact.opted_out"
    actions: [{tag: {remove: [no-marketing]}}]
`},
			steps: []step{
				{ev: withContact(msg("m1", "", "hi"), schemas.Contact{ID: "p1", Name: "Priya"})},
				{ev: schemas.Event{ID: "o1", Type: schemas.ContactOptedOut}, matched: []string{"opted-out"}, conv: fields{"tags": []string{"no-marketing"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if c, _ := e.Contact("p1"); !c.OptedOut {
							t.Errorf("contact p1 = %+v, want opted out", c)
						}
					}},
				{ev: msg("m2", "", "hi"), matched: []string{"opted-out"}},
				{ev: schemas.Event{ID: "i1", Type: schemas.ContactOptedIn}, matched: []string{"opted-in"}, conv: fields{"tags": []string{}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if c, _ := e.Contact("p1"); c.OptedOut {
							t.Errorf("contact p1 = %+v, want opted in", c)
						}
					}},
				{ev: msg("m3", "", "hi")},
				// By contact alone, without a conversation.
				{ev: schemas.Event{ID: "o2", Type: schemas.ContactOptedOut, Conversation: "-", Contact: &schemas.Contact{ID: "p1"}},
					matched: []string{"opted-out"}, noConv: true,
					acts: []act{{rule: "opted-out", typ: "tag", outcome: "skipped", reason: "no_conversation"}}},
				{ev: msg("m4", "", "hi"), matched: []string{"opted-out"}},
			},
		},
	})
}

// TestBotTurns covers bot_turns (section 6) and the turn-limit pattern.
func TestBotTurns(t *testing.T) {
	runCases(t, []engineCase{
		{
			name: "counted after the rules, only while the bot handles it; reset by resolution",
			files: []string{`
params: {bot_turn_limit: 3}
rules:
  - name: turn-limit
    on: [bot.answered]
    when: conversation.handler == "bot" && conversation.bot_turns >= params.bot_turn_limit
    actions: [{escalate: {reason: turn_limit}}]
`},
			steps: []step{
				{ev: msg("m1", "", "hi"), conv: fields{"bot_turns": 0}},
				{ev: bot("b1", "", "answer 1"), conv: fields{"bot_turns": 1}},
				{ev: bot("b2", "", "answer 2"), conv: fields{"bot_turns": 2}},
				{ev: msg("m2", "", "hmm"), conv: fields{"bot_turns": 2}},
				{ev: bot("b3", "", "answer 3"), conv: fields{"bot_turns": 3}},
				{ev: bot("b4", "", "answer 4"), matched: []string{"turn-limit"},
					conv: fields{"bot_turns": 3, "handler": "human", "escalated": true, "escalation_reason": "turn_limit"}},
				{ev: bot("b5", "", "answer 5"), conv: fields{"bot_turns": 3}},
				{ev: resolved("r1", ""), conv: fields{"bot_turns": 0, "handler": "bot", "status": "resolved"}},
				{ev: msg("m3", "", "back again"), conv: fields{"bot_turns": 0, "status": "open"}},
				{ev: bot("b6", "", "answer 6"), conv: fields{"bot_turns": 1}},
			},
		},
		{
			name: "a bot answer whose rules resolve the conversation ends the stretch",
			files: []string{`
rules:
  - name: bot-solved
    on: [bot.answered]
    when: event.resolved
    actions: [{set_status: {status: resolved}}]
`},
			steps: []step{
				{ev: msg("m1", "", "hi")},
				{ev: bot("b1", "", "answer")},
				{ev: schemas.Event{ID: "b2", Type: schemas.BotAnswered, Text: "done", Confidence: 0.9, Resolved: true},
					matched: []string{"bot-solved"}, conv: fields{"status": "resolved", "bot_turns": 0, "handler": "bot"}},
			},
		},
	})
}

// TestActions covers reply and the window, send_template, escalate,
// ask_bot and set_status (section 6).
func TestActions(t *testing.T) {
	contact := schemas.Contact{ID: "p1", Name: "Priya", Language: "en"}
	answer := func(id string, d time.Duration) schemas.Event { return atTime(bot(id, "", "try restarting"), d) }
	runCases(t, []engineCase{
		{
			name: "reply inside the 24 h window only; send_template outside it too",
			files: []string{`
rules:
  - name: answer
    on: [bot.answered]
    actions:
      - reply: {text: "{{ event.text }}"}
      - send_template: {name: follow_up, language: en, params: ["{{ contact.name }}"]}
`},
			steps: []step{
				{ev: withContact(atTime(msg("m1", "", "my router is broken"), 0), contact)},
				{ev: answer("b1", time.Hour), matched: []string{"answer"}, conv: fields{"window_open": true},
					acts: []act{
						{rule: "answer", typ: "reply", outcome: "queued", params: map[string]any{"text": "try restarting"}},
						{rule: "answer", typ: "send_template", outcome: "queued", params: map[string]any{"name": "follow_up", "language": "en", "params": []string{"Priya"}}},
					},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if len(d.Outbound) != 2 || d.Outbound[0].Kind != schemas.OutboundReply || d.Outbound[1].Kind != schemas.OutboundTemplate {
							t.Errorf("outbound = %+v, want a reply and a template", d.Outbound)
						}
					}},
				{ev: answer("b2", 24*time.Hour-time.Minute), matched: []string{"answer"}, conv: fields{"window_open": true},
					acts: []act{{rule: "answer", typ: "reply", outcome: "queued"}, {rule: "answer", typ: "send_template", outcome: "queued"}}},
				{ev: answer("b3", 24*time.Hour), matched: []string{"answer"}, conv: fields{"window_open": false},
					acts: []act{
						{rule: "answer", typ: "reply", outcome: "skipped", reason: "window_closed"},
						{rule: "answer", typ: "send_template", outcome: "queued", params: map[string]any{"name": "follow_up", "language": "en", "params": []string{"Priya"}}},
					},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if len(d.Outbound) != 1 || d.Outbound[0].Kind != schemas.OutboundTemplate || d.Outbound[0].Contact != "p1" {
							t.Errorf("outbound = %+v, want only the template, to p1", d.Outbound)
						}
					}},
				{ev: answer("b4", 30*time.Hour), matched: []string{"answer"}, acts: []act{{rule: "answer", typ: "reply", outcome: "skipped", reason: "window_closed"}, {rule: "answer", typ: "send_template", outcome: "queued"}}},
				// A new customer message opens the window again.
				{ev: atTime(msg("m2", "", "still broken"), 31*time.Hour), conv: fields{"window_open": true}},
				{ev: answer("b5", 31*time.Hour+time.Minute), matched: []string{"answer"}, acts: []act{{rule: "answer", typ: "reply", outcome: "queued"}, {rule: "answer", typ: "send_template", outcome: "queued"}}},
			},
		},
		{
			name: "escalate hands over to humans; ask_bot is then skipped until resolved",
			files: []string{`
rules:
  - {name: ask-first, on: [message.received], priority: 20, actions: [{ask_bot: {}}]}
  - name: angry
    on: [message.received]
    priority: 10
    when: contains_word(event.text, "angry")
    actions: [{escalate: {reason: angry, tier: 2}}]
  - {name: ask-again, on: [message.received], actions: [{ask_bot: {}}]}
`},
			steps: []step{
				{ev: msg("m1", "", "hello"), matched: []string{"ask-first", "ask-again"},
					acts: []act{{rule: "ask-first", typ: "ask_bot", outcome: "queued"}, {rule: "ask-again", typ: "ask_bot", outcome: "queued"}}},
				{ev: msg("m2", "", "I am ANGRY"), matched: []string{"ask-first", "angry", "ask-again"},
					acts: []act{
						{rule: "ask-first", typ: "ask_bot", outcome: "queued"},
						{rule: "angry", typ: "escalate", outcome: "applied", params: map[string]any{"reason": "angry", "tier": 2}, result: map[string]any{"tier": 2}},
						{rule: "ask-again", typ: "ask_bot", outcome: "skipped", reason: "handled_by_human"},
					},
					conv: fields{"handler": "human", "escalated": true, "escalation_reason": "angry"},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if len(d.Outbound) != 1 || d.Outbound[0].Kind != schemas.OutboundAskBot {
							t.Errorf("outbound = %+v, want the first ask_bot only", d.Outbound)
						}
					}},
				{ev: msg("m3", "", "hello?"), matched: []string{"ask-first", "ask-again"},
					acts: []act{{rule: "ask-first", typ: "ask_bot", outcome: "skipped", reason: "handled_by_human"}, {rule: "ask-again", typ: "ask_bot", outcome: "skipped", reason: "handled_by_human"}}},
				{ev: resolved("r1", "")},
				{ev: msg("m4", "", "hello"), matched: []string{"ask-first", "ask-again"},
					acts: []act{{rule: "ask-first", typ: "ask_bot", outcome: "queued"}, {rule: "ask-again", typ: "ask_bot", outcome: "queued"}}},
			},
		},
		{
			name: "set_status resolved resets bot_turns, handler and escalated",
			files: []string{`
rules:
  - name: wants-human
    on: [message.received]
    when: contains_word(event.text, "human")
    actions: [{escalate: {reason: keyword}}]
  - name: close
    on: [message.received]
    when: contains_word(event.text, "thanks")
    actions: [{set_status: {status: resolved}}]
  - name: after-close
    on: [message.received]
    priority: -1
    when: conversation.status == "resolved" && conversation.bot_turns == 0 && conversation.handler == "bot" && !conversation.escalated
    actions: [{note: {text: closed}}]
`},
			steps: []step{
				{ev: msg("m1", "", "hi")},
				{ev: bot("b1", "", "a")},
				{ev: bot("b2", "", "b"), conv: fields{"bot_turns": 2}},
				{ev: msg("m2", "", "a human please"), matched: []string{"wants-human"}, conv: fields{"bot_turns": 2, "handler": "human", "escalated": true}},
				{ev: msg("m3", "", "thanks"), matched: []string{"close", "after-close"},
					conv: fields{"status": "resolved", "bot_turns": 0, "handler": "bot", "escalated": false, "escalation_reason": ""}},
			},
		},
	})
}

// TestDuplicate covers section 4's repeated ids.
func TestDuplicate(t *testing.T) {
	set := compile(t, supportTeam+`
rules:
  - name: route
    on: [message.received, bot.answered]
    actions:
      - tag: {add: ["{{ event.id }}"]}
      - assign: {team: support}
`)
	e := engine.New()
	runSteps(t, set, e, []step{{ev: msg("m1", "", "hi"), matched: []string{"route"}, conv: fields{"tags": []string{"m1"}, "messages": 1}}})
	before := conversation(t, e, "c1")
	agentBefore := e.Agent("anita")

	for _, dup := range []schemas.Event{
		atTime(msg("m1", "c1", "hi"), time.Minute),
		atTime(msg("m1", "c2", "a different event with the same id"), time.Hour), // another conversation, later
		atTime(bot("m1", "c1", "same id, another type"), 2*time.Minute),
	} {
		d, err := e.Process(set, &dup)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Duplicate {
			t.Fatalf("%+v: not a duplicate", dup)
		}
		if d.Conversation != nil || len(d.Matched) != 0 || len(d.Actions) != 0 || len(d.Outbound) != 0 {
			t.Errorf("duplicate decision did something: %+v", d)
		}
		got := jsonString(t, d)
		want := `{"event":` + jsonString(t, dup) + `,"duplicate":true}`
		if got != want {
			t.Errorf("duplicate JSON\n got %s\nwant %s", got, want)
		}
	}
	if after := conversation(t, e, "c1"); !reflect.DeepEqual(before, after) {
		t.Errorf("a duplicate changed the conversation:\nbefore %+v\n after %+v", before, after)
	}
	if _, ok := e.Conversation("c2"); ok {
		t.Error("a duplicate created conversation c2")
	}
	if agentAfter := e.Agent("anita"); agentAfter != agentBefore {
		t.Errorf("a duplicate changed anita: %+v, was %+v", agentAfter, agentBefore)
	}
	// Fresh ids still count.
	runSteps(t, set, e, []step{{ev: atTime(msg("m2", "", "hi"), 3*time.Minute), matched: []string{"route"}, conv: fields{"tags": []string{"m1", "m2"}, "messages": 2}}})
}

const handoff = `
  - name: handoff
    on: [message.received]
    when: contains_word(event.text, "human") && conversation.handler == "bot"
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
      - reply: {text: 'Bringing in {{ assignee.id != "" ? assignee.first_name : "a teammate" }}; reply within {{ eta_minutes }} minutes.'}
`

func handoffActs(result map[string]any, who string) []act {
	return []act{
		{rule: "handoff", typ: "escalate", outcome: "applied"},
		{rule: "handoff", typ: "assign", outcome: "applied", result: result},
		{rule: "handoff", typ: "reply", outcome: "queued", params: map[string]any{"text": "Bringing in " + who + "; reply within 7 minutes."}},
	}
}

func agentResult(a string) map[string]any { return map[string]any{"agent": a} }

var queuedSupport = map[string]any{"queued": "support"}

// TestAssignment covers assign, team queues and draining (section 6).
func TestAssignment(t *testing.T) {
	route := `
rules:
  - name: route
    on: [message.received]
    when: conversation.assignee == ""
    actions: [{assign: {team: support}}]
`
	routed := func(id, conv, agent string) step {
		return step{ev: msg(id, conv, "hi"), matched: []string{"route"},
			acts: []act{{rule: "route", typ: "assign", outcome: "applied", result: agentResult(agent)}},
			conv: fields{"assignee": agent, "team": "support"}}
	}
	assignedTo := func(conv, agent string) func(t *testing.T, e *engine.Engine, d schemas.Decision) {
		return func(t *testing.T, e *engine.Engine, d schemas.Decision) {
			t.Helper()
			if c := conversation(t, e, conv); c.Assignee != agent {
				t.Errorf("%s is assigned to %q, want %q", conv, c.Assignee, agent)
			}
		}
	}
	runCases(t, []engineCase{
		{
			name:  "round robin in listed order, after the last member given one, skipping the unavailable",
			files: []string{supportTeam + route},
			steps: []step{
				routed("m1", "c1", "anita"),
				routed("m2", "c2", "ben"),
				routed("m3", "c3", "carla"),
				{ev: agentStatus("s1", "anita", "offline")},
				routed("m4", "c4", "ben"),
				{ev: agentStatus("s2", "ben", "away")},
				{ev: agentStatus("s3", "anita", "online")},
				routed("m5", "c5", "carla"),
				routed("m6", "c6", "anita"),
				routed("m7", "c7", "carla"),
			},
		},
		{
			name: "skills and language",
			files: []string{supportTeam + `
rules:
  - name: billing
    on: [message.received]
    priority: 10
    stop: true
    when: contains_word(event.text, "refund")
    actions: [{assign: {team: support, skills: [billing]}}]
  - name: by-language
    on: [message.received]
    actions: [{assign: {team: support, language: "{{ contact.language }}"}}]
`},
			steps: []step{
				{ev: msg("m1", "c1", "refund please"), matched: []string{"billing"}, conv: fields{"assignee": "anita"}},
				{ev: msg("m2", "c2", "refund please"), matched: []string{"billing"}, conv: fields{"assignee": "anita"}},
				{ev: withContact(msg("m3", "c3", "hola"), schemas.Contact{ID: "p3", Language: "es"}), matched: []string{"by-language"}, conv: fields{"assignee": "carla"}},
				{ev: withContact(msg("m4", "c4", "namaste"), schemas.Contact{ID: "p4", Language: "hi"}), matched: []string{"by-language"}, conv: fields{"assignee": "anita"}},
				{ev: withContact(msg("m5", "c5", "hello"), schemas.Contact{ID: "p5", Language: "en"}), matched: []string{"by-language"}, conv: fields{"assignee": "ben"}},
				{ev: withContact(msg("m6", "c6", "bonjour"), schemas.Contact{ID: "p6", Language: "fr"}), matched: []string{"by-language"},
					acts: []act{{rule: "by-language", typ: "assign", outcome: "applied", params: map[string]any{"team": "support", "language": "fr"}, result: queuedSupport}},
					conv: fields{"assignee": "", "team": "support"}},
				// Nobody given m6's conversation: the rotation is unchanged.
				{ev: withContact(msg("m7", "c7", "hello"), schemas.Contact{ID: "p7", Language: "en"}), matched: []string{"by-language"}, conv: fields{"assignee": "carla"}},
			},
		},
		{
			name: "least busy counts open conversations, ties in round-robin order",
			files: []string{`
teams:
  billing:
    strategy: least_busy
    members:
      - {id: dev, name: Dev Malhotra}
      - {id: erin, name: Erin Walsh}
      - {id: fay, name: Fay Wong}
rules:
  - name: route
    on: [message.received]
    when: conversation.assignee == ""
    actions: [{assign: {team: billing}}]
`},
			steps: []step{
				{ev: assigned("as1", "c1", "dev")},
				{ev: assigned("as2", "c2", "dev")},
				{ev: assigned("as3", "c3", "erin")},
				{ev: msg("m4", "c4", "hi"), matched: []string{"route"}, conv: fields{"assignee": "fay"}},  // 2, 1, 0
				{ev: msg("m5", "c5", "hi"), matched: []string{"route"}, conv: fields{"assignee": "erin"}}, // 2, 1, 1: after fay come dev, erin
				{ev: msg("m6", "c6", "hi"), matched: []string{"route"}, conv: fields{"assignee": "fay"}},  // 2, 2, 1
				{ev: msg("m7", "c7", "hi"), matched: []string{"route"}, conv: fields{"assignee": "dev"}},  // 2, 2, 2: after fay comes dev
				{ev: resolved("r1", "c1")},
				{ev: resolved("r2", "c2")},
				{ev: msg("m8", "c8", "hi"), matched: []string{"route"}, conv: fields{"assignee": "dev"}}, // 1, 2, 2: resolved ones do not count
				{ev: msg("m9", "c9", "hi"), matched: []string{"route"}, conv: fields{"assignee": "erin"}},
			},
		},
		{
			name:  "at capacity nobody is eligible: the conversation waits, and the queue drains oldest first",
			files: []string{"params: {default_eta_minutes: 7}\n" + capTeam(1) + "rules:" + handoff},
			steps: []step{
				{ev: msg("m1", "c1", "human please"), matched: []string{"handoff"}, acts: handoffActs(agentResult("anita"), "Anita"),
					conv: fields{"assignee": "anita", "team": "support", "handler": "human"}},
				{ev: msg("m2", "c2", "human please"), matched: []string{"handoff"}, acts: handoffActs(agentResult("ben"), "Ben")},
				{ev: msg("m3", "c3", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate"),
					conv: fields{"assignee": "", "team": "support", "handler": "human", "escalated": true}},
				{ev: msg("m4", "c4", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate"), conv: fields{"assignee": ""}},
				{ev: resolved("r1", "c1"), conv: fields{"status": "resolved"},
					assigned: []schemas.Assignment{{Conversation: "c3", Agent: "anita", Team: "support"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						c3 := conversation(t, e, "c3")
						if c3.Assignee != "anita" || c3.Team != "support" || c3.Status != "open" || c3.Handler != "human" {
							t.Errorf("c3 = %+v, want open, with humans, assigned to anita in support", c3.Conversation)
						}
						assignedTo("c4", "")(t, e, d)
					}},
				{ev: resolved("r2", "c2"), assigned: []schemas.Assignment{{Conversation: "c4", Agent: "ben", Team: "support"}}, check: assignedTo("c4", "ben")},
				// Already with humans: the handoff does not fire again.
				{ev: msg("m5", "c3", "human?")},
				// Draining moves the rotation on too: c5 goes to anita from the
				// queue, so the next one goes to ben.
				{ev: msg("m6", "c5", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: resolved("r3", "c3"), assigned: []schemas.Assignment{{Conversation: "c5", Agent: "anita", Team: "support"}}},
				{ev: resolved("r4", "c4")},
				{ev: resolved("r5", "c5")},
				{ev: msg("m7", "c6", "human please"), matched: []string{"handoff"}, acts: handoffActs(agentResult("ben"), "Ben")},
			},
		},
		{
			name:  "an agent coming online drains the queue",
			files: []string{"params: {default_eta_minutes: 7}\n" + capTeam(1) + "rules:" + handoff},
			steps: []step{
				{ev: agentStatus("s1", "anita", "offline")},
				{ev: agentStatus("s2", "ben", "away")},
				{ev: msg("m1", "c1", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: msg("m2", "c2", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: msg("m3", "c3", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: agentStatus("s3", "ben", "online"), noConv: true,
					assigned: []schemas.Assignment{{Conversation: "c1", Agent: "ben", Team: "support"}}, check: assignedTo("c1", "ben")},
				{ev: agentStatus("s4", "anita", "online"), noConv: true,
					assigned: []schemas.Assignment{{Conversation: "c2", Agent: "anita", Team: "support"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						assignedTo("c2", "anita")(t, e, d)
						assignedTo("c3", "")(t, e, d)
						if open := e.Agent("anita").Open; open != 1 {
							t.Errorf("anita has %d open conversations, want 1", open)
						}
					}},
				// Assigned by hand while waiting: it leaves the queue.
				{ev: assigned("as1", "c3", "ben"), conv: fields{"assignee": "ben", "team": "support"},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("ben").Open; open != 2 {
							t.Errorf("ben has %d open conversations, want 2 (by hand, over capacity)", open)
						}
					}},
				{ev: resolved("r1", "c1")},
				{ev: resolved("r3", "c3"), check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
					assignedTo("c3", "ben")(t, e, d)
					if open := e.Agent("ben").Open; open != 0 {
						t.Errorf("ben has %d open conversations, want 0", open)
					}
				}},
				{ev: msg("m4", "c4", "human please"), matched: []string{"handoff"}, acts: handoffActs(agentResult("ben"), "Ben")},
			},
		},
		{
			name: "capacity counts pending; a conversation resolved while queued leaves the queue",
			files: []string{"params: {default_eta_minutes: 7}\n" + capTeam(1) + "rules:" + handoff + `
  - name: pend
    on: [agent.replied]
    actions: [{set_status: {status: pending}}]
`},
			steps: []step{
				{ev: agentStatus("s1", "ben", "offline")},
				{ev: msg("m1", "c1", "human please"), matched: []string{"handoff"}, acts: handoffActs(agentResult("anita"), "Anita")},
				{ev: replied("a1", "c1", "anita"), matched: []string{"pend"}, conv: fields{"status": "pending", "assignee": "anita"}},
				{ev: msg("m2", "c2", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: msg("m3", "c3", "human please"), matched: []string{"handoff"}, acts: handoffActs(queuedSupport, "a teammate")},
				{ev: resolved("r2", "c2"), conv: fields{"status": "resolved", "assignee": ""}},
				{ev: resolved("r1", "c1"), assigned: []schemas.Assignment{{Conversation: "c3", Agent: "anita", Team: "support"}},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						assignedTo("c2", "")(t, e, d)
						assignedTo("c3", "anita")(t, e, d)
					}},
				// c2 must not come back from the queue when capacity frees again.
				{ev: resolved("r3", "c3"), check: assignedTo("c2", "")},
			},
		},
		{
			name: "reassigning a waiting conversation to another team moves it to that team's queue",
			files: []string{`
teams:
  support:
    members: [{id: anita, name: Anita Rao, capacity: 1}]
  billing:
    members: [{id: dev, name: Dev Malhotra, capacity: 1}]
rules:
  - name: to-support
    on: [message.received]
    when: contains_word(event.text, "help")
    actions: [{assign: {team: support}}]
  - name: to-billing
    on: [message.received]
    when: contains_word(event.text, "invoice")
    actions: [{assign: {team: billing}}]
`},
			steps: []step{
				{ev: msg("m1", "c1", "help"), matched: []string{"to-support"}, conv: fields{"assignee": "anita"}},
				{ev: msg("m2", "c2", "invoice"), matched: []string{"to-billing"}, conv: fields{"assignee": "dev"}},
				{ev: msg("m3", "c3", "help"), matched: []string{"to-support"}, acts: []act{{rule: "to-support", typ: "assign", outcome: "applied", result: queuedSupport}}},
				{ev: msg("m4", "c3", "it is about an invoice"), matched: []string{"to-billing"}, conv: fields{"assignee": "", "team": "billing"},
					acts: []act{{rule: "to-billing", typ: "assign", outcome: "applied", result: map[string]any{"queued": "billing"}}}},
				{ev: resolved("r1", "c1"), check: assignedTo("c3", "")},
				{ev: resolved("r2", "c2"), assigned: []schemas.Assignment{{Conversation: "c3", Agent: "dev", Team: "billing"}}, check: assignedTo("c3", "dev")},
				// Assigned, then sent to a team where nobody is free: it waits
				// there, unassigned, and its agent is free again.
				{ev: msg("m5", "c4", "help"), matched: []string{"to-support"}, conv: fields{"assignee": "anita"}},
				{ev: msg("m6", "c4", "invoice"), matched: []string{"to-billing"}, conv: fields{"assignee": "", "team": "billing"},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("anita").Open; open != 0 {
							t.Errorf("anita has %d open conversations, want 0", open)
						}
					}},
				{ev: msg("m7", "c5", "help"), matched: []string{"to-support"}, conv: fields{"assignee": "anita"}},
			},
		},
		{
			name: "reopening a resolved conversation does not free capacity twice",
			files: []string{`
teams:
  support:
    members: [{id: anita, name: Anita Rao, capacity: 1}]
rules:
  - name: route
    on: [message.received]
    when: conversation.assignee == ""
    actions: [{assign: {team: support}}]
`},
			steps: []step{
				{ev: msg("m1", "c1", "hi"), matched: []string{"route"}, conv: fields{"assignee": "anita"}},
				{ev: resolved("r1", "c1")},
				{ev: msg("m2", "c1", "me again"), matched: []string{"route"}, conv: fields{"assignee": "anita", "status": "open"}},
				{ev: msg("m3", "c2", "hi"), matched: []string{"route"}, conv: fields{"assignee": ""}},
				{ev: msg("m4", "c3", "hi"), matched: []string{"route"}, conv: fields{"assignee": ""},
					check: func(t *testing.T, e *engine.Engine, d schemas.Decision) {
						if open := e.Agent("anita").Open; open != 1 {
							t.Errorf("anita has %d open conversations, want 1 (capacity 1)", open)
						}
					}},
			},
		},
	})
}

// capTeam is a support team of anita and ben with the given capacity each.
func capTeam(capacity int) string {
	return fmt.Sprintf(`
teams:
  support:
    members:
      - {id: anita, name: Anita Rao, languages: [en], capacity: %d}
      - {id: ben, name: Ben Okafor, languages: [en], capacity: %d}
`, capacity, capacity)
}

// TestDecisionJSON checks the printed shape of decisions (section 8)
// against testdata/decisions.golden.jsonl; go test -update rewrites it.
func TestDecisionJSON(t *testing.T) {
	set := compile(t, "params: {default_eta_minutes: 5}\n"+capTeam(8)+`
lists:
  human_keywords: [human, agent, "speak to someone"]
rules:
  - name: human-keyword
    on: [message.received]
    when: contains_any(event.text, lists.human_keywords) && conversation.handler == "bot"
    priority: 100
    stop: true
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
      - reply: {text: "I'm bringing in {{ assignee.first_name }} from our team. They'll reply within {{ eta_minutes }} minutes."}
  - name: broken
    on: [bot.answered]
    when: conversation.tags[0] == "x"
    actions: [{tag: {add: [x]}}]
`)
	e := engine.New()
	evs := []schemas.Event{
		withContact(atTime(msg("m1", "c1", "hello"), 0), schemas.Contact{ID: "p1", Name: "Priya Shah", Language: "en", Phone: "+919800000001"}),
		{ID: "b1", Type: schemas.BotAnswered, At: at(time.Minute), Conversation: "c1", Text: "Have you tried restarting?", Confidence: 0.4, Topic: "router"},
		atTime(msg("m3", "c1", "Can I SPEAK TO SOMEONE?"), 2*time.Minute),
		atTime(msg("m3", "c1", "Can I SPEAK TO SOMEONE?"), 2*time.Minute),
		{ID: "s1", Type: schemas.AgentStatus, At: at(3 * time.Minute), Agent: "ben", Status: "away"},
	}
	var out bytes.Buffer
	var decisions []schemas.Decision
	for i := range evs {
		d, err := e.Process(set, &evs[i])
		if err != nil {
			t.Fatal(err)
		}
		decisions = append(decisions, d)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}

	// What must hold whatever the golden file says.
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	// A decision is a record: later events must not change it.
	for i, d := range decisions {
		if got := jsonString(t, d); got != lines[i] {
			t.Errorf("decision %d changed after later events:\n was %s\n now %s", i, lines[i], got)
		}
	}
	for i, l := range lines {
		if i == 3 {
			continue // the duplicate
		}
		for _, s := range []string{`"matched":[`, `"actions":[`, `"errors":[`, `"ruleset":"sha256:`} {
			if !strings.Contains(l, s) {
				t.Errorf("decision %d lacks %s: %s", i, s, l)
			}
		}
		if strings.Contains(l, "null") {
			t.Errorf("decision %d has a null: %s", i, l)
		}
	}
	for _, i := range []int{0, 2} {
		if !strings.Contains(lines[i], `"errors":[]`) {
			t.Errorf("decision %d: want \"errors\":[]: %s", i, lines[i])
		}
	}
	if !strings.Contains(lines[0], `"tags":[]`) || !strings.Contains(lines[0], `"matched":[]`) || !strings.Contains(lines[0], `"actions":[]`) {
		t.Errorf("decision 0: want empty lists, not null or missing: %s", lines[0])
	}
	if !strings.Contains(lines[2], `"params":{"text":"I'm bringing in Anita from our team. They'll reply within 5 minutes."},"outcome":"queued"`) {
		t.Errorf("decision 2: reply not rendered: %s", lines[2])
	}
	if !strings.Contains(lines[1], `"errors":[{"rule":"broken","error":`) {
		t.Errorf("decision 1: want the run-time error under its rule: %s", lines[1])
	}
	if want := `{"event":{"id":"m3","type":"message.received","at":"2026-11-21T10:02:00Z","conversation":"c1","text":"Can I SPEAK TO SOMEONE?","kind":"text"},"duplicate":true}`; lines[3] != want {
		t.Errorf("duplicate:\n got %s\nwant %s", lines[3], want)
	}
	if strings.Contains(lines[4], `"conversation":{`) {
		t.Errorf("decision 4 has no conversation to show: %s", lines[4])
	}
	if v := decisions[0].RuleSet; v != set.Version() || len(v) != len("sha256:")+12 {
		t.Errorf("ruleset = %q, want the set's version %q", v, set.Version())
	}

	golden := filepath.Join("testdata", "decisions.golden.jsonl")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decisions differ from %s (go test -update rewrites it):\n got:\n%s\nwant:\n%s", golden, out.Bytes(), want)
	}
}

// TestInvalidEvent checks that a malformed event is refused and changes
// nothing, not even the set of seen ids.
func TestInvalidEvent(t *testing.T) {
	set := compile(t, `
rules:
  - {name: any, on: [message.received], actions: [{tag: {add: [seen]}}]}
`)
	e := engine.New()
	bad := schemas.Event{ID: "m1", Type: schemas.MessageReceived, At: t0} // no conversation
	if _, err := e.Process(set, &bad); err == nil {
		t.Fatal("an event without a conversation was accepted")
	}
	good := schemas.Event{ID: "m1", Type: schemas.MessageReceived, At: t0, Conversation: "c1"}
	d, err := e.Process(set, &good)
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicate || len(d.Matched) != 1 {
		t.Errorf("after a refused event with the same id: %+v", d)
	}
}
