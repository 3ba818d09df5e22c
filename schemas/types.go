// Package schemas holds the data types of the triage contract (events,
// decisions, conversation state) and the JSON Schema of rule files. It
// imports nothing but the standard library, so every other package, and
// every connector, can share these types without pulling in the engine.
//
// The struct tags serve two readers: `json` for the wire and the audit log,
// `expr` for rule expressions, which see the same lower_snake_case names.
package schemas

import (
	"time"
)

// Event types of the contract (spec section 4).
const (
	MessageReceived      = "message.received"
	BotAnswered          = "bot.answered"
	AgentReplied         = "agent.replied"
	AgentStatus          = "agent.status"
	ConversationAssigned = "conversation.assigned"
	ConversationResolved = "conversation.resolved"
	ContactOptedOut      = "contact.opted_out"
	ContactOptedIn       = "contact.opted_in"
	SLAWarning           = "sla.warning"
	SLABreached          = "sla.breached"
)

// EventTypes lists every event type of the contract, in the spec's order.
var EventTypes = []string{
	MessageReceived, BotAnswered, AgentReplied, AgentStatus,
	ConversationAssigned, ConversationResolved,
	ContactOptedOut, ContactOptedIn, SLAWarning, SLABreached,
}

// IsEventType reports whether t is an event type of the contract.
func IsEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// Conversation status, handler and priority values.
const (
	StatusOpen     = "open"
	StatusPending  = "pending"
	StatusResolved = "resolved"

	HandlerBot   = "bot"
	HandlerHuman = "human"

	PriorityLow    = "low"
	PriorityNormal = "normal"
	PriorityHigh   = "high"
	PriorityUrgent = "urgent"

	AgentOnline  = "online"
	AgentAway    = "away"
	AgentOffline = "offline"
)

// Statuses, Priorities and AgentStatuses list the allowed values in order.
var (
	Statuses      = []string{StatusOpen, StatusPending, StatusResolved}
	Priorities    = []string{PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}
	AgentStatuses = []string{AgentOnline, AgentAway, AgentOffline}
)

// Contact is a customer. In an event every field is optional; the engine
// keeps the last known value of each.
type Contact struct {
	ID       string `json:"id,omitempty" expr:"id"`
	Name     string `json:"name,omitempty" expr:"name"`
	Language string `json:"language,omitempty" expr:"language"`
	Phone    string `json:"phone,omitempty" expr:"phone"`
	OptedOut bool   `json:"opted_out,omitempty" expr:"opted_out"`
}

// SLAInfo describes the deadline behind an sla.warning or sla.breached event.
type SLAInfo struct {
	Policy string    `json:"policy" expr:"policy"`
	Metric string    `json:"metric" expr:"metric"`
	DueAt  time.Time `json:"due_at" expr:"due_at"`
}

// Event is one thing that happened (spec section 4). Absent fields are zero
// values, which is also what expressions see.
type Event struct {
	ID           string    `json:"id" expr:"id"`
	Type         string    `json:"type" expr:"type"`
	At           time.Time `json:"at" expr:"at"`
	Conversation string    `json:"conversation,omitempty" expr:"conversation"`
	Contact      *Contact  `json:"contact,omitempty" expr:"-"`
	Text         string    `json:"text,omitempty" expr:"text"`
	Kind         string    `json:"kind,omitempty" expr:"kind"`
	Payload      string    `json:"payload,omitempty" expr:"payload"`
	Confidence   float64   `json:"confidence,omitempty" expr:"confidence"`
	Topic        string    `json:"topic,omitempty" expr:"topic"`
	Resolved     bool      `json:"resolved,omitempty" expr:"resolved"`
	Agent        string    `json:"agent,omitempty" expr:"agent"`
	Status       string    `json:"status,omitempty" expr:"status"`
	SLA          *SLAInfo  `json:"sla,omitempty" expr:"-"`
}

// Conversation is the state of one conversation: what rules see as
// `conversation` and what a decision records after the event.
type Conversation struct {
	ID                    string    `json:"id" expr:"id"`
	Status                string    `json:"status" expr:"status"`
	Handler               string    `json:"handler" expr:"handler"`
	Assignee              string    `json:"assignee" expr:"assignee"`
	Team                  string    `json:"team" expr:"team"`
	Tags                  []string  `json:"tags" expr:"tags"`
	Priority              string    `json:"priority" expr:"priority"`
	BotTurns              int       `json:"bot_turns" expr:"bot_turns"`
	Escalated             bool      `json:"escalated" expr:"escalated"`
	EscalationReason      string    `json:"escalation_reason" expr:"escalation_reason"`
	OpenedAt              time.Time `json:"opened_at,omitzero" expr:"opened_at"`
	FirstResponseAt       time.Time `json:"first_response_at,omitzero" expr:"first_response_at"`
	LastCustomerMessageAt time.Time `json:"last_customer_message_at,omitzero" expr:"last_customer_message_at"`
	LastAgentMessageAt    time.Time `json:"last_agent_message_at,omitzero" expr:"last_agent_message_at"`
	WindowOpen            bool      `json:"window_open" expr:"window_open"`
	Messages              int       `json:"messages" expr:"messages"`
	Contact               string    `json:"contact,omitempty" expr:"-"`
	SLA                   SLAStatus `json:"sla,omitzero" expr:"sla"`
}

// SLA clock states.
const (
	SLARunning = "running"
	SLAPaused  = "paused"
	SLAStopped = "stopped"
)

// SLAStatus is where a conversation stands against its SLA policy: the
// policy that applies now and each metric's clock. It is empty when the
// rule set has no SLA policies.
type SLAStatus struct {
	Policy        string    `json:"policy,omitempty" expr:"policy"`
	FirstResponse SLAMetric `json:"first_response,omitzero" expr:"first_response"`
	NextResponse  SLAMetric `json:"next_response,omitzero" expr:"next_response"`
	Resolution    SLAMetric `json:"resolution,omitzero" expr:"resolution"`
}

// SLAMetric is one metric's clock in the current stretch: its state, its
// deadline under the applying policy (zero when paused or when the policy
// does not measure it) and whether the deadline passed before the clock
// stopped.
type SLAMetric struct {
	State    string    `json:"state,omitempty" expr:"state"`
	DueAt    time.Time `json:"due_at,omitzero" expr:"due_at"`
	Breached bool      `json:"breached,omitempty" expr:"breached"`
}

// HasTag reports whether the conversation carries tag.
func (c *Conversation) HasTag(tag string) bool {
	for _, t := range c.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Assignee is the agent a conversation is assigned to, as templates see it.
// Every field is empty when nobody is assigned.
type Assignee struct {
	ID        string `json:"id" expr:"id"`
	Name      string `json:"name" expr:"name"`
	FirstName string `json:"first_name" expr:"first_name"`
}

// Outcomes of an action in a decision.
const (
	OutcomeApplied = "applied"
	OutcomeQueued  = "queued"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
)

// ActionRecord is one fired action in a decision.
type ActionRecord struct {
	Rule    string         `json:"rule"`
	Type    string         `json:"type"`
	Params  map[string]any `json:"params"`
	Outcome string         `json:"outcome"`
	Reason  string         `json:"reason,omitempty"`
	Error   string         `json:"error,omitempty"`
	Result  map[string]any `json:"result,omitempty"`
}

// RuleError is a run-time expression error, recorded under its rule.
type RuleError struct {
	Rule  string `json:"rule,omitempty"` // empty for an error of the event itself
	Error string `json:"error"`
}

// Assignment records a conversation given to an agent as a consequence of
// an event, outside any rule: a team queue draining when capacity frees.
type Assignment struct {
	Conversation string `json:"conversation"`
	Agent        string `json:"agent"`
	Team         string `json:"team"`
}

// Decision is what one event yields (spec section 8): the audit record.
type Decision struct {
	Event     Event  `json:"event"`
	Duplicate bool   `json:"duplicate,omitempty"`
	RuleSet   string `json:"ruleset,omitempty"`
	// Matched, Actions and Errors print as [] when empty and vanish only
	// when nil, which is how a duplicate prints as the contract says:
	// the event and "duplicate": true, nothing else.
	Matched      []string       `json:"matched,omitzero"`
	Actions      []ActionRecord `json:"actions,omitzero"`
	Errors       []RuleError    `json:"errors,omitzero"`
	Assignments  []Assignment   `json:"assignments,omitempty"`
	Conversation *Conversation  `json:"conversation,omitempty"`

	// Outbound is the work this decision asks connectors to deliver. It is
	// not part of the printed record: the actions already show it.
	Outbound []Outbound `json:"-"`
}

// Outbound kinds: what leaves the process.
const (
	OutboundReply    = "reply"
	OutboundTemplate = "send_template"
	OutboundNotify   = "notify"
	OutboundAskBot   = "ask_bot"
)

// Outbound is one side effect to deliver after the decision is stored.
// Key is an idempotency key, stable for the same event, rule and action.
type Outbound struct {
	Key          string         `json:"key"`
	Kind         string         `json:"kind"`
	Conversation string         `json:"conversation"`
	Contact      string         `json:"contact,omitempty"`
	Params       map[string]any `json:"params"`
}
