package schemas

import "time"

// Note is an internal note on a conversation, never sent to the customer.
type Note struct {
	At     time.Time `json:"at"`
	Text   string    `json:"text"`
	Author string    `json:"author"` // "rule:<name>" or who made it
}

// Message is one message of a conversation, either way.
type Message struct {
	At   time.Time `json:"at"`
	From string    `json:"from"` // customer, triage, agent:<id>
	Text string    `json:"text"`
	// Status is the WhatsApp delivery status of a message triage sent:
	// sent, delivered, read or failed; it only moves forward.
	Status string `json:"status,omitempty"`
	// Event is the id of the event that carried a customer's or an
	// agent's message.
	Event string `json:"event,omitempty"`
	// ID is the WhatsApp message id of a message triage sent, which
	// status webhooks name.
	ID string `json:"id,omitempty"`
}

// Delivery results.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// Delivery is what became of one outbound item (a decision's queued
// action): pending, delivered, or dead after its attempts. Decisions are
// the audit record as evaluated and keep "queued"; deliveries say what
// happened next.
type Delivery struct {
	Key      string    `json:"key"` // the outbound item's idempotency key: event/rule/action
	Kind     string    `json:"kind"`
	Result   string    `json:"result"` // pending, delivered or dead
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"` // when it was delivered or given up; for a pending one, its next try
}
