package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

const slaRules = `version: 1
teams:
  support:
    members: [{id: anita, name: Anita Rao}]
sla:
  - name: urgent
    when: conversation.priority == "urgent"
    first_response: 2m
  - name: standard
    first_response: 10m
    next_response: 10m
    resolution: 1h
    warn_before: 3m
rules:
  - name: handoff
    on: [message.received]
    when: event.text == "human"
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
      - reply: {text: "{{ assignee.first_name }} will reply within {{ eta_minutes }} minutes"}
  - name: hold
    on: [message.received]
    when: event.text == "hold"
    actions: [{set_status: {status: pending}}]
  - name: raise
    on: [message.received]
    when: event.text == "urgent"
    actions: [{set_priority: {priority: urgent}}]
  - name: breach
    on: [sla.breached]
    actions: [{tag: {add: ["breached_{{ event.sla.metric }}"]}}]
`

var slaT0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

type slaStep struct {
	at   time.Duration // after t0
	typ  string
	text string
}

// run replays steps the way replay does, deadlines first, then fires what
// is due until the end, and returns every decision.
func runSLA(t *testing.T, set *rules.Set, steps []slaStep, until time.Duration) []schemas.Decision {
	t.Helper()
	eng := engine.New()
	var out []schemas.Decision
	for i, s := range steps {
		ev := schemas.Event{ID: strings.Repeat("e", i+1), Type: s.typ, At: slaT0.Add(s.at), Conversation: "c1", Text: s.text}
		if s.typ == schemas.AgentReplied || s.typ == schemas.ConversationAssigned {
			ev.Agent = "anita"
		}
		out = append(out, eng.FireDue(set, ev.At)...)
		d, err := eng.Process(set, &ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return append(out, eng.FireDue(set, slaT0.Add(until))...)
}

// fired lists the SLA decisions as "type metric +offset".
func fired(ds []schemas.Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Event.SLA != nil {
			out = append(out, d.Event.Type+" "+d.Event.SLA.Metric+" +"+d.Event.At.Sub(slaT0).String())
		}
	}
	return out
}

func TestSLAClocks(t *testing.T) {
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(slaRules)}}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(at time.Duration, text string) slaStep { return slaStep{at, schemas.MessageReceived, text} }
	reply := func(at time.Duration) slaStep { return slaStep{at, schemas.AgentReplied, "hi"} }
	tests := []struct {
		name  string
		steps []slaStep
		until time.Duration
		want  []string
	}{
		{"the bot handling starts no first-response clock; resolution runs from opening",
			[]slaStep{msg(0, "hello")}, 2 * time.Hour,
			[]string{"sla.warning resolution +57m0s", "sla.breached resolution +1h0m0s"}},
		{"a reply in time stops first response before its warning",
			[]slaStep{msg(0, "human"), reply(5 * time.Minute)}, 30 * time.Minute, nil},
		{"a late reply: warning, breach, each once",
			[]slaStep{msg(0, "human"), reply(20 * time.Minute)}, 30 * time.Minute,
			[]string{"sla.warning first_response +7m0s", "sla.breached first_response +10m0s"}},
		{"first response counts from the escalation, not the first message",
			[]slaStep{msg(0, "hello"), msg(5*time.Minute, "human")}, 20 * time.Minute,
			[]string{"sla.warning first_response +12m0s", "sla.breached first_response +15m0s"}},
		{"next response starts at the customer's next message and pending pauses it",
			[]slaStep{msg(0, "human"), reply(time.Minute), msg(2*time.Minute, "thanks, and?"), msg(4*time.Minute, "hold"), msg(14*time.Minute, "back")},
			30 * time.Minute,
			// 2m ran before the hold (2..4), 10m paused (4..14), then 8m are left: due at +22m, warning at +19m.
			[]string{"sla.warning next_response +19m0s", "sla.breached next_response +22m0s"}},
		{"raising the priority re-plans from the same start; the old deadlines never fire",
			[]slaStep{msg(0, "human"), msg(time.Minute, "urgent")}, 20 * time.Minute,
			[]string{"sla.breached first_response +2m0s"}},
		{"opened straight to humans: assigned by hand first, first response starts with the first message",
			[]slaStep{{0, schemas.ConversationAssigned, ""}, msg(time.Minute, "hello")}, 20 * time.Minute,
			[]string{"sla.warning first_response +8m0s", "sla.breached first_response +11m0s"}},
		{"a request for a human evaluated after a later message (Meta redelivered it) still starts first response",
			[]slaStep{msg(10*time.Second, "hello"), msg(5*time.Second, "human")}, 20 * time.Minute,
			[]string{"sla.warning first_response +7m5s", "sla.breached first_response +10m5s"}},
		{"a resolution stops every clock: nothing fires",
			[]slaStep{msg(0, "human"), {time.Minute, schemas.ConversationResolved, ""}}, 2 * time.Hour, nil},
		{"a reopened conversation starts fresh clocks; the old stretch's never fire",
			[]slaStep{msg(0, "human"), {time.Minute, schemas.ConversationResolved, ""}, msg(30*time.Minute, "human")}, 45 * time.Minute,
			[]string{"sla.warning first_response +37m0s", "sla.breached first_response +40m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fired(runSLA(t, set, tt.steps, tt.until))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("fired:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSLAETAAndView(t *testing.T) {
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(slaRules)}}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New()
	ev := schemas.Event{ID: "m1", Type: schemas.MessageReceived, At: slaT0, Conversation: "c1", Text: "human"}
	d, err := eng.Process(set, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Actions[2].Params["text"]; got != "Anita will reply within 10 minutes" {
		t.Errorf("eta from the first-response deadline: %q", got)
	}
	s := d.Conversation.SLA
	if s.Policy != "standard" || s.FirstResponse.State != schemas.SLARunning || !s.FirstResponse.DueAt.Equal(slaT0.Add(10*time.Minute)) ||
		s.Resolution.State != schemas.SLARunning || !s.Resolution.DueAt.Equal(slaT0.Add(time.Hour)) || s.NextResponse.State != "" {
		t.Errorf("sla view: %+v", s)
	}
	// Four minutes later the promise is six minutes, rounded up.
	ev = schemas.Event{ID: "m2", Type: schemas.MessageReceived, At: slaT0.Add(4*time.Minute + 30*time.Second), Conversation: "c1", Text: "human"}
	d, _ = eng.Process(set, &ev)
	if got := d.Actions[2].Params["text"]; got != "Anita will reply within 6 minutes" {
		t.Errorf("eta rounds up the minutes left: %q", got)
	}
	// The breach marks the metric, and the rules see it.
	ds := eng.FireDue(set, slaT0.Add(time.Hour))
	var last schemas.Decision
	for _, x := range ds {
		if x.Event.Type == schemas.SLABreached && x.Event.SLA.Metric == "first_response" {
			last = x
		}
	}
	if last.Conversation == nil || !last.Conversation.SLA.FirstResponse.Breached || !last.Conversation.HasTag("breached_first_response") {
		t.Fatalf("breach decision: %+v", last)
	}
	if want := "sla:c1:first_response:breached:2026-05-04T10:10:00Z"; last.Event.ID != want {
		t.Errorf("deadline event id %q, want %q", last.Event.ID, want)
	}
	// Firing again fires nothing: each deadline at most once.
	if again := eng.FireDue(set, slaT0.Add(3*time.Hour)); len(again) != 0 {
		t.Errorf("fired twice: %v", fired(again))
	}
}

// TestSLAPauseThenPolicyChange: time a clock ran before a pause counts in
// the calendar of the policy applying when the deadline is planned, so a
// policy re-chosen after the pause counts from the same start (section 7).
func TestSLAPauseThenPolicyChange(t *testing.T) {
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(`version: 1
teams:
  support:
    members: [{id: anita}]
business_hours:
  office: {timezone: UTC, weekly: {mon: ["09:00-10:00"]}}
sla:
  - name: urgent
    when: conversation.priority == "urgent"
    next_response: 5m
  - name: office
    next_response: 10m
    business_hours: office
rules:
  - {name: handoff, on: [message.received], when: 'event.text == "human"', actions: [{escalate: {reason: k}}, {assign: {team: support}}]}
  - {name: hold, on: [message.received], when: 'event.text == "hold"', actions: [{set_status: {status: pending}}]}
  - {name: raise, on: [message.received], when: 'event.text == "urgent"', actions: [{set_priority: {priority: urgent}}, {set_status: {status: open}}]}
`)}}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// slaT0 is Monday 10:00 UTC: the office has just closed, so under the
	// office policy next_response counts nothing.
	msg := func(at time.Duration, text string) slaStep { return slaStep{at, schemas.MessageReceived, text} }
	steps := []slaStep{msg(0, "human"), {time.Minute, schemas.AgentReplied, ""}, msg(2*time.Minute, "and?"), msg(60*time.Minute, "hold"), msg(70*time.Minute, "urgent")}
	got := fired(runSLA(t, set, steps, 2*time.Hour))
	// It ran 58 minutes (2..60) before the hold: under urgent's 24x7
	// clock the 5 minutes were reached at +7m, a deadline already past
	// when the priority rose, so it fires then with its own time.
	want := []string{"sla.breached next_response +7m0s"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fired:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
