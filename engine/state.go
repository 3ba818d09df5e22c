package engine

import (
	"sort"
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// State is what one evaluation reads and changes. Memory implements it
// for a single goroutine (replay, tests, explain); the daemon's stores
// hand one out per unit of work, holding the conversations it names
// locked for the whole unit and taking the shared lock the first time
// Shared is called, so that evaluations of different conversations run in
// parallel and those that touch assignment state run one at a time.
//
// An error from any method ends the evaluation without a decision; the
// store then throws the unit's changes away.
type State interface {
	// Seen records an event id and reports whether it was recorded before.
	Seen(id string) (bool, error)
	// Conversation returns the conversation with id, or nil when there is
	// none yet. The caller may change it; the store keeps the changes.
	Conversation(id string) (*Conv, error)
	// AddConversation adds a conversation Conversation did not find.
	AddConversation(c *Conv) error
	// Contact returns the contact with id, a new one holding only the id
	// when there is none yet.
	Contact(id string) (*schemas.Contact, error)
	// Shared returns the state all conversations share, locked until the
	// unit of work ends.
	Shared() (*Shared, error)
	// Queued returns a conversation that waits in a team's queue, for
	// assignment to an agent who became eligible. It returns nil when
	// another unit of work holds it: that unit, finding its conversation
	// queued, tries the queue itself.
	Queued(id string) (*Conv, error)
	// Peek returns the shared state as last committed, without its lock
	// and without the queues, to read only: whether taking the lock is
	// worth it. (Once Shared was called, it returns that.)
	Peek() (*Shared, error)
}

// Note is an internal note on a conversation.
type Note = schemas.Note

// Conv is the engine's record of a conversation: the state rules see plus
// what only the engine needs.
type Conv struct {
	schemas.Conversation
	Notes []Note `json:"notes,omitempty"`

	assigneeView schemas.Assignee
	queued       bool
	// waitTeam and waitReq say, while queued, where it waits and for
	// whom: whether an agent could take it is then known without the
	// queue.
	waitTeam string
	waitReq  actions.AssignRequest
	sla      slaState
	// windowClosedAfter is the customer message after which WhatsApp said
	// the window was closed; a later message opens it again.
	windowClosedAfter time.Time
}

// NewConv returns a conversation opened at at, as the engine makes one
// for the first event that names it.
func NewConv(id string, at time.Time) *Conv {
	return &Conv{Conversation: schemas.Conversation{
		ID: id, Status: schemas.StatusOpen, Handler: schemas.HandlerBot,
		Priority: schemas.PriorityNormal, Tags: []string{}, OpenedAt: at,
	}}
}

// Clone returns a deep copy: a store that hands out copies keeps its own
// record untouched until the unit of work commits.
func (c *Conv) Clone() *Conv {
	out := *c
	out.Tags = append([]string{}, c.Tags...)
	out.Notes = append([]Note(nil), c.Notes...)
	for i := range out.sla.clocks {
		out.sla.clocks[i].spans = append([]span(nil), c.sla.clocks[i].spans...)
	}
	return &out
}

// Queued reports whether the conversation waits in a team's queue.
func (c *Conv) Queued() bool { return c.queued }

// CloseWindow records that WhatsApp refused a message to the conversation
// as outside the customer service window (error 131047): Meta's clock is
// the one that counts, so the window stays closed for triage too, and
// replies are skipped as window_closed, until the customer writes again.
func (c *Conv) CloseWindow() {
	c.windowClosedAfter = c.LastCustomerMessageAt
	c.WindowOpen = false
}

// AgentState is what the engine knows of an agent at run time.
type AgentState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Open   int    `json:"open"` // open (not resolved) conversations assigned
}

// QueueEntry is a conversation waiting in a team's queue.
type QueueEntry struct {
	Conversation string                `json:"conversation"`
	Since        time.Time             `json:"since"`
	Request      actions.AssignRequest `json:"request"`
}

// TeamState is a team's run-time state: whom round robin gave the last
// conversation, and who waits.
type TeamState struct {
	Name      string       `json:"name"`
	LastGiven string       `json:"last_given,omitempty"`
	Queue     []QueueEntry `json:"queue,omitempty"`
}

// Shared is the state every conversation shares: agents' statuses and
// open counts, team queues and round-robin positions. Whoever changes it
// holds it alone (State.Shared locks it), so no agent goes over capacity
// and no conversation is given twice.
type Shared struct {
	agents map[string]*AgentState
	teams  map[string]*TeamState

	freed       bool       // capacity or an agent's status changed since the last drain
	drainedWith *rules.Set // the set the queues were last drained under
}

// NewShared returns empty shared state: every agent online with nothing
// assigned, every queue empty.
func NewShared() *Shared {
	return &Shared{agents: map[string]*AgentState{}, teams: map[string]*TeamState{}}
}

// PutAgent sets an agent's state, for a store loading it.
func (s *Shared) PutAgent(a AgentState) { s.agents[a.ID] = &a }

// PutTeam sets a team's state, for a store loading it.
func (s *Shared) PutTeam(t TeamState) { s.teams[t.Name] = &t }

// Agents returns every agent's state, sorted by id, for a store saving it.
func (s *Shared) Agents() []AgentState {
	out := make([]AgentState, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Teams returns every team's state, sorted by name, for a store saving it.
func (s *Shared) Teams() []TeamState {
	out := make([]TeamState, 0, len(s.teams))
	for _, t := range s.teams {
		c := *t
		c.Queue = append([]QueueEntry(nil), t.Queue...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// QueueLengths returns how many conversations wait in each team's queue.
func (s *Shared) QueueLengths() map[string]int {
	out := make(map[string]int, len(s.teams))
	for name, t := range s.teams {
		out[name] = len(t.Queue)
	}
	return out
}

// agentState is an agent's state, read only: pick runs on snapshots
// other goroutines read too.
func (s *Shared) agentState(id string) AgentState {
	if a := s.agents[id]; a != nil {
		return *a
	}
	return AgentState{ID: id, Status: schemas.AgentOnline}
}

// lastGiven is whom a team's round robin gave the last conversation.
func (s *Shared) lastGiven(team string) string {
	if t := s.teams[team]; t != nil {
		return t.LastGiven
	}
	return ""
}

func (s *Shared) agent(id string) *AgentState {
	a := s.agents[id]
	if a == nil {
		a = &AgentState{ID: id, Status: schemas.AgentOnline}
		s.agents[id] = a
	}
	return a
}

func (s *Shared) team(name string) *TeamState {
	t := s.teams[name]
	if t == nil {
		t = &TeamState{Name: name}
		s.teams[name] = t
	}
	return t
}

// Memory is the in-memory state: conversations, contacts, the shared
// assignment state, the planned SLA deadlines and the ids of events
// already seen. It is what replay, tests and explain run on, for one
// goroutine; the daemon's in-memory store keeps one behind its locks.
type Memory struct {
	convs    map[string]*Conv
	contacts map[string]*schemas.Contact
	seen     map[string]bool
	shared   *Shared

	deadlines minHeap[deadline] // planned SLA events, earliest first
	seq       int               // insertion order, to break ties between deadlines
}

// NewMemory returns empty state.
func NewMemory() *Memory {
	return &Memory{
		convs:     map[string]*Conv{},
		contacts:  map[string]*schemas.Contact{},
		seen:      map[string]bool{},
		shared:    NewShared(),
		deadlines: newMinHeap(deadlineLess),
	}
}

// Seen implements State.
func (m *Memory) Seen(id string) (bool, error) {
	if m.seen[id] {
		return true, nil
	}
	m.seen[id] = true
	return false, nil
}

// Conversation implements State.
func (m *Memory) Conversation(id string) (*Conv, error) { return m.convs[id], nil }

// AddConversation implements State.
func (m *Memory) AddConversation(c *Conv) error {
	m.convs[c.ID] = c
	return nil
}

// Contact implements State.
func (m *Memory) Contact(id string) (*schemas.Contact, error) { return m.contact(id), nil }

// Shared implements State.
func (m *Memory) Shared() (*Shared, error) { return m.shared, nil }

// Queued implements State: one goroutine holds everything.
func (m *Memory) Queued(id string) (*Conv, error) { return m.convs[id], nil }

// Peek implements State.
func (m *Memory) Peek() (*Shared, error) { return m.shared, nil }

// plan implements planner: deadlines go on the heap FireDue pops.
func (m *Memory) plan(d deadline) {
	m.seq++
	d.seq = m.seq
	m.deadlines.push(d)
}

// planner is a State that keeps planned deadlines in order itself. The
// daemon's stores do not: they ask each conversation for its next
// deadline (Conv.NextDeadline) when they save it.
type planner interface{ plan(deadline) }

func (m *Memory) contact(id string) *schemas.Contact {
	c := m.contacts[id]
	if c == nil {
		c = &schemas.Contact{ID: id}
		m.contacts[id] = c
	}
	return c
}

var _ State = (*Memory)(nil)
