// Package httpapi serves triage's HTTP surface: Meta's webhook, the /v1
// API with bearer tokens and roles, metrics and health. It knows nothing
// of how events are evaluated: it talks to a Backend, declared here, that
// the command wires in.
package httpapi

import (
	"context"
	"errors"
	"time"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/schemas"
)

// Backend is what the HTTP layer needs from the running daemon.
type Backend interface {
	// Submit accepts events for evaluation. It returns once they are
	// accepted (stored, in the durable store; queued in memory), before
	// they are evaluated: the webhook answers 200 fast. Events of one
	// conversation are evaluated in the order given.
	Submit(ctx context.Context, events []schemas.Event, by string) error
	// Statuses records WhatsApp delivery statuses (deduplicated by key).
	Statuses(ctx context.Context, statuses []whatsapp.Status) error
	// Conversation returns one conversation's view, or ok false.
	Conversation(ctx context.Context, id string) (ConversationView, bool, error)
	// Conversations lists conversations matching the filter.
	Conversations(ctx context.Context, f Filter) ([]ConversationSummary, error)
	// Rules reports the running rule set and the latest reload.
	Rules(ctx context.Context) RulesStatus
	// Reload reloads the rules now; an error means the old set still runs.
	Reload(ctx context.Context) error
	// Ready reports whether the daemon can take traffic.
	Ready(ctx context.Context) error
	// DeadDeliveries lists outbound items given up after their attempts,
	// newest first, at most limit.
	DeadDeliveries(ctx context.Context, limit int) ([]DeadDelivery, error)
}

// DeadDelivery is an outbound item given up after its attempts: what it
// was to deliver, to whom, and why it could not.
type DeadDelivery struct {
	schemas.Delivery
	Conversation string         `json:"conversation,omitempty"`
	Contact      string         `json:"contact,omitempty"`
	Params       map[string]any `json:"params"`
}

// DeadList is the answer of GET /v1/outbound/dead.
type DeadList struct {
	Dead []DeadDelivery `json:"dead"`
}

// Filter narrows a conversation list. Empty fields match everything;
// Teams, when not nil, limits the list to conversations of those teams or
// assigned to Agent (an agent's view).
type Filter struct {
	Status   string
	Team     string
	Assignee string
	Teams    []string
	Agent    string
	// After and Limit page the list, in id order: ids after After, at
	// most Limit of them.
	After string
	Limit int
}

// ConversationSummary is one row of a conversation list.
type ConversationSummary struct {
	schemas.Conversation
}

// Note, Message and Delivery are the records of a conversation's view;
// they are the contract's, in schemas.
type (
	Note     = schemas.Note
	Message  = schemas.Message
	Delivery = schemas.Delivery
)

// ConversationView is GET /v1/conversations/{id}: the state, its messages
// and notes, its decision records and deliveries, newest last.
type ConversationView struct {
	Conversation schemas.Conversation `json:"conversation"`
	Contact      schemas.Contact      `json:"contact"`
	Messages     []Message            `json:"messages"`
	Notes        []Note               `json:"notes"`
	Decisions    []schemas.Decision   `json:"decisions"`
	Deliveries   []Delivery           `json:"deliveries"`
}

// RulesStatus is GET /v1/rules.
type RulesStatus struct {
	Version     string    `json:"version"`
	Files       int       `json:"files"`
	Rules       int       `json:"rules"`
	LoadedAt    time.Time `json:"loaded_at"`
	LastAttempt time.Time `json:"last_attempt"`
	OK          bool      `json:"ok"`
	LastError   string    `json:"last_error,omitempty"`
	Problems    []string  `json:"problems,omitempty"` // path:line:col: message
}

// ErrInvalid marks an event the Backend refuses as malformed (400).
var ErrInvalid = errors.New("invalid event")
