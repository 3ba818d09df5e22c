package engine

import (
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// Note is an internal note on a conversation.
type Note struct {
	At     time.Time `json:"at"`
	Text   string    `json:"text"`
	Author string    `json:"author"` // "rule:<name>" or an agent id
}

// Conv is the engine's record of a conversation: the state rules see plus
// what only the engine needs.
type Conv struct {
	schemas.Conversation
	Notes []Note `json:"notes,omitempty"`

	assigneeView schemas.Assignee
	queued       bool
	sla          slaState
	// windowClosedAfter is the customer message after which WhatsApp said
	// the window was closed; a later message opens it again.
	windowClosedAfter time.Time
}

// AgentState is what the engine knows of an agent at run time.
type AgentState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Open   int    `json:"open"` // open (not resolved) conversations assigned
}

type queueEntry struct {
	conv  string
	since time.Time
	req   actions.AssignRequest
}

type teamState struct {
	lastGiven string
	queue     []queueEntry
}

// Memory is the in-memory state: conversations, contacts, agents, team
// queues and the ids of events already seen. It is what replay, tests and
// explain run on, and the default for serve.
type Memory struct {
	convs    map[string]*Conv
	contacts map[string]*schemas.Contact
	agents   map[string]*AgentState
	teams    map[string]*teamState
	seen     map[string]bool

	freed       bool       // capacity or an agent's status changed since the last drain
	drainedWith *rules.Set // the set the queues were last drained under

	deadlines deadlines // planned SLA events, earliest first
	seq       int       // insertion order, to break ties between deadlines
}

// NewMemory returns empty state.
func NewMemory() *Memory {
	return &Memory{
		convs:    map[string]*Conv{},
		contacts: map[string]*schemas.Contact{},
		agents:   map[string]*AgentState{},
		teams:    map[string]*teamState{},
		seen:     map[string]bool{},
	}
}

func (m *Memory) agent(id string) *AgentState {
	a := m.agents[id]
	if a == nil {
		a = &AgentState{ID: id, Status: schemas.AgentOnline}
		m.agents[id] = a
	}
	return a
}

func (m *Memory) team(name string) *teamState {
	t := m.teams[name]
	if t == nil {
		t = &teamState{}
		m.teams[name] = t
	}
	return t
}

func (m *Memory) contact(id string) *schemas.Contact {
	c := m.contacts[id]
	if c == nil {
		c = &schemas.Contact{ID: id}
		m.contacts[id] = c
	}
	return c
}

func newConv(id string, at time.Time) *Conv {
	return &Conv{Conversation: schemas.Conversation{
		ID: id, Status: schemas.StatusOpen, Handler: schemas.HandlerBot,
		Priority: schemas.PriorityNormal, Tags: []string{}, OpenedAt: at,
	}}
}
