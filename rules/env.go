package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/textmatch"
)

// EventEnv is the event as expressions see it: like schemas.Event, with
// the optional parts as values so `event.contact.name` never meets nil.
type EventEnv struct {
	ID           string          `expr:"id"`
	Type         string          `expr:"type"`
	At           time.Time       `expr:"at"`
	Conversation string          `expr:"conversation"`
	Contact      schemas.Contact `expr:"contact"`
	Text         string          `expr:"text"`
	Kind         string          `expr:"kind"`
	Payload      string          `expr:"payload"`
	Confidence   float64         `expr:"confidence"`
	Topic        string          `expr:"topic"`
	Resolved     bool            `expr:"resolved"`
	Agent        string          `expr:"agent"`
	Status       string          `expr:"status"`
	SLA          schemas.SLAInfo `expr:"sla"`
}

// Env is one worker's evaluation environment: the map expressions read,
// the VM that runs them and the buffers for matching keyword lists. It is
// built once and rebound for every event, so evaluating allocates little.
// An Env is not safe for concurrent use; make one per worker.
type Env struct {
	set    *Set
	m      map[string]any
	event  EventEnv
	vm     vm.VM
	tokens []string
	hits   textmatch.Hits
	kw     []bool
	kwSet  bool
	eta    int
}

// NewEnv returns an environment for evaluating this set's expressions.
func (s *Set) NewEnv() *Env {
	e := &Env{set: s, kw: make([]bool, s.matcher.Len())}
	e.m = map[string]any{
		"event":        &e.event,
		"conversation": &schemas.Conversation{},
		"contact":      &schemas.Contact{},
		"assignee":     &schemas.Assignee{},
		"eta_minutes":  0,
		"params":       s.paramsValue,
		"lists":        s.listsValue,
		"now":          time.Time{},
		kwName:         e.kw,
	}
	return e
}

// Bind points the environment at an event and the live state it changes.
// Rules are then evaluated with Match: those the set lists as candidates
// for the event's type.
// conv, contact and assignee are read through their pointers, so changes
// made by actions are seen by expressions evaluated later.
func (e *Env) Bind(ev *schemas.Event, conv *schemas.Conversation, contact *schemas.Contact, assignee *schemas.Assignee, eta int) {
	e.event = EventEnv{
		ID: ev.ID, Type: ev.Type, At: ev.At, Conversation: ev.Conversation,
		Text: ev.Text, Kind: ev.Kind, Payload: ev.Payload, Confidence: ev.Confidence,
		Topic: ev.Topic, Resolved: ev.Resolved, Agent: ev.Agent, Status: ev.Status,
	}
	if ev.Contact != nil {
		e.event.Contact = *ev.Contact
	}
	if ev.SLA != nil {
		e.event.SLA = *ev.SLA
	}
	e.m["conversation"] = conv
	e.m["contact"] = contact
	e.m["assignee"] = assignee
	e.m["eta_minutes"], e.eta = eta, eta
	e.m["now"] = ev.At
	// Every keyword list is matched against the event's text once, here,
	// instead of once per rule that mentions it.
	// Only event types with a rule that reads the hits pay for them.
	if e.set.kwTypes[ev.Type] {
		e.tokens = textmatch.AppendTokens(e.tokens[:0], ev.Text)
		e.set.matcher.Match(e.tokens, &e.hits)
		for i := range e.kw {
			e.kw[i] = e.hits.Has(i)
		}
		e.kwSet = true
	} else if e.kwSet {
		clear(e.kw) // no stale hits from an earlier event
		e.kwSet = false
	}
}

// SetETA updates eta_minutes, which changes when an action assigns.
func (e *Env) SetETA(minutes int) {
	if minutes != e.eta {
		e.m["eta_minutes"], e.eta = minutes, minutes
	}
}

// Values returns the map expressions read, for tools that show it.
func (e *Env) Values() map[string]any { return e.m }

func (e *Env) run(p *vm.Program) (any, error) {
	return e.vm.Run(p, e.m)
}
