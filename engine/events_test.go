package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

func compileOne(t *testing.T, y string) *rules.Set {
	t.Helper()
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(y)}}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestEventsNamingUnknownAgents(t *testing.T) {
	set := compileOne(t, "version: 1\nteams:\n  support:\n    members: [{id: anita}]\nrules:\n  - {name: r, on: [agent.status], actions: [{assign: {team: support}}]}\n")
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	for _, ev := range []schemas.Event{
		{ID: "1", Type: schemas.ConversationAssigned, At: at, Conversation: "c1", Agent: "nobody"},
		{ID: "2", Type: schemas.AgentReplied, At: at, Conversation: "c2", Agent: "zed"},
		{ID: "3", Type: schemas.AgentStatus, At: at, Agent: "zed", Status: "away"},
	} {
		d, err := engine.New().Process(set, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Errors) != 1 || d.Errors[0].Rule != "" || d.Errors[0].Error != ev.Type+`: agent "`+ev.Agent+`" is not a member of any team` {
			t.Errorf("%s: errors %+v", ev.Type, d.Errors)
		}
	}
}

func TestNotifyWithoutConversation(t *testing.T) {
	set := compileOne(t, "version: 1\nrules:\n  - name: offline\n    on: [agent.status]\n    actions:\n      - notify: {slack: \"#leads\", text: \"{{ event.agent }} is {{ event.status }}\"}\n      - tag: {add: [x]}\n")
	ev := schemas.Event{ID: "1", Type: schemas.AgentStatus, At: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), Agent: "anita", Status: "offline"}
	d, err := engine.New().Process(set, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if d.Actions[0].Outcome != schemas.OutcomeQueued || len(d.Outbound) != 1 || d.Outbound[0].Params["text"] != "anita is offline" {
		t.Errorf("notify without a conversation: %+v, outbound %+v", d.Actions[0], d.Outbound)
	}
	if d.Actions[1].Outcome != schemas.OutcomeSkipped || d.Actions[1].Reason != "no_conversation" {
		t.Errorf("tag without a conversation: %+v", d.Actions[1])
	}
}

func TestTimesPrintInUTC(t *testing.T) {
	set := compileOne(t, "version: 1\nrules:\n  - {name: r, on: [message.received], actions: [ask_bot]}\n")
	ist := time.FixedZone("IST", 5*3600+1800)
	ev := schemas.Event{ID: "1", Type: schemas.MessageReceived, At: time.Date(2026, 5, 4, 15, 30, 0, 0, ist), Conversation: "c1"}
	d, err := engine.New().Process(set, &ev)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := schemas.AppendDecision(nil, &d)
	want := `"at":"2026-05-04T10:00:00Z"`
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), `"opened_at":"2026-05-04T10:00:00Z"`) {
		t.Errorf("decision times not in UTC: %s", b)
	}
}

func TestCloseWindow(t *testing.T) {
	set := compileOne(t, "version: 1\nrules:\n  - {name: r, on: [bot.answered], actions: [{reply: {text: hi}}]}\n")
	eng := engine.New()
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	process := func(ev schemas.Event) schemas.Decision {
		d, err := eng.Process(set, &ev)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	process(schemas.Event{ID: "m1", Type: schemas.MessageReceived, At: at, Conversation: "c1", Text: "q"})
	eng.CloseWindow("c1") // WhatsApp answered 131047
	d := process(schemas.Event{ID: "b1", Type: schemas.BotAnswered, At: at.Add(time.Minute), Conversation: "c1", Confidence: 0.9})
	if d.Actions[0].Outcome != schemas.OutcomeSkipped || d.Actions[0].Reason != "window_closed" || d.Conversation.WindowOpen {
		t.Errorf("after CloseWindow: %+v", d.Actions[0])
	}
	process(schemas.Event{ID: "m2", Type: schemas.MessageReceived, At: at.Add(2 * time.Minute), Conversation: "c1", Text: "again"})
	d = process(schemas.Event{ID: "b2", Type: schemas.BotAnswered, At: at.Add(3 * time.Minute), Conversation: "c1", Confidence: 0.9})
	if d.Actions[0].Outcome != schemas.OutcomeQueued {
		t.Errorf("a new customer message opens the window again: %+v", d.Actions[0])
	}
}
