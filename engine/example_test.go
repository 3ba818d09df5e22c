package engine_test

import (
	"fmt"
	"log"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// A rule set of two rules: a greeting for a new conversation, and the
// escape hatch to a human, which outranks it and stops the rest.
func Example() {
	const ruleFile = `version: 1
params:
  default_eta_minutes: 5
lists:
  human_keywords: [human, agent, "speak to someone"]
teams:
  support:
    members:
      - {id: anita, name: Anita Rao, languages: [en], capacity: 8}
rules:
  - name: greet
    on: [message.received]
    when: conversation.messages == 1
    actions:
      - reply: {text: "Hi {{ contact.name }}, how can we help?"}
  - name: human-keyword
    on: [message.received]
    when: contains_any(event.text, lists.human_keywords) && conversation.handler == "bot"
    priority: 100
    stop: true
    actions:
      - escalate: {reason: keyword}
      - assign: {team: support}
      - reply: {text: 'Bringing in {{ assignee.id != "" ? assignee.first_name : "a teammate" }}; expect a reply within {{ eta_minutes }} minutes.'}
`
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: []byte(ruleFile)}}, rules.Options{})
	if err != nil {
		log.Fatal(err)
	}
	e := engine.New()
	start := time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
	events := []schemas.Event{
		{ID: "m1", Type: schemas.MessageReceived, At: start, Conversation: "c1",
			Contact: &schemas.Contact{ID: "p1", Name: "Priya"}, Text: "My order has not arrived"},
		{ID: "m2", Type: schemas.MessageReceived, At: start.Add(2 * time.Minute), Conversation: "c1",
			Text: "Can I speak to someone?"},
	}
	for i := range events {
		d, err := e.Process(set, &events[i])
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(d.Event.ID, "matched", d.Matched)
		for _, a := range d.Actions {
			if a.Type == "reply" {
				fmt.Printf("  reply (%s): %s\n", a.Outcome, a.Params["text"])
			}
		}
	}
	// Output:
	// m1 matched [greet]
	//   reply (queued): Hi Priya, how can we help?
	// m2 matched [human-keyword]
	//   reply (queued): Bringing in Anita; expect a reply within 5 minutes.
}
