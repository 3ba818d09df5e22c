package engine

import (
	"context"
	"time"

	"github.com/triage-dev/triage/schemas"
)

// Store is where the daemon keeps everything: conversations and the state
// they share, the audit log, messages, and the outbound work waiting for
// delivery. MemoryStore keeps it in this process; connectors/postgres in
// a database that several replicas share. Both pass engine/storetest.
//
// Every change goes through a unit of work (Tx): the conversations it
// names are locked for the whole unit, so events of one conversation are
// evaluated one at a time, in the order their units lock it, while units
// of different conversations run in parallel.
type Store interface {
	// Begin starts a unit of work holding the conversations named (locked
	// in one fixed order, so that units never wait for each other in a
	// cycle) and records the ids of events: the unit's Seen then reports
	// whether each was recorded before this unit.
	Begin(ctx context.Context, convs []string, events []schemas.Event) (Tx, error)
	// BeginDue starts a unit of work holding up to limit conversations
	// with an SLA deadline due at or before now (Conv.NextDeadline),
	// skipping those another unit holds, and returns their ids, earliest
	// deadline first; when none is due it returns a nil Tx and no ids.
	// Each deadline is fired by exactly one unit: the unit that fires it
	// also records, in the conversation, that it fired.
	BeginDue(ctx context.Context, now time.Time, limit int) (Tx, []string, error)
	// NextDeadline returns the earliest SLA deadline of any conversation.
	NextDeadline(ctx context.Context) (time.Time, bool, error)

	// Conversation returns everything about one conversation, or ok false.
	Conversation(ctx context.Context, id string) (ConversationRecord, bool, error)
	// Conversations lists the conversations f selects, by id.
	Conversations(ctx context.Context, f ConversationFilter) ([]schemas.Conversation, error)
	// Messages returns a conversation's messages, oldest first.
	Messages(ctx context.Context, conv string) ([]schemas.Message, error)
	// Contact returns a contact, or ok false.
	Contact(ctx context.Context, id string) (schemas.Contact, bool, error)
	// QueueLengths returns how many conversations wait in each team's
	// queue.
	QueueLengths(ctx context.Context) (map[string]int, error)

	// Claim leases up to limit outbound items due at or before now, for
	// lease: for each order key (OutboxItem.Order) only the oldest item not
	// yet delivered or dead, and only when it is not leased already. An
	// item whose lease runs out (its deliverer died) is claimed again. The
	// claimed items' Attempts count this attempt.
	Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]OutboxItem, error)
	// Delivered finishes an item; sent, when not nil, is the message it
	// sent, added to the item's conversation. Delivered, Retry and Dead
	// fail when the item was claimed again since item's attempt (its
	// lease ran out): Attempts is the claim's fencing token.
	Delivered(ctx context.Context, item OutboxItem, at time.Time, sent *schemas.Message) error
	// Retry puts an item back, to be claimed again at due.
	Retry(ctx context.Context, item OutboxItem, due time.Time, cause string) error
	// Dead gives an item up: it stays, visible, and no longer holds up the
	// items after it.
	Dead(ctx context.Context, item OutboxItem, at time.Time, cause string) error
	// Outbound reports how many items wait and how many are dead, and when
	// the earliest waiting one is due.
	Outbound(ctx context.Context) (OutboundStats, error)
	// DeadItems lists dead items, newest first, at most limit.
	DeadItems(ctx context.Context, limit int) ([]OutboxItem, error)

	// Statuses records WhatsApp delivery statuses on the messages they
	// name (a status only moves forward; one that arrives before its
	// message is stored applies when it is) and returns those not
	// recorded before, with the conversation of the message they name
	// when the store knows it: a redelivered webhook changes nothing.
	Statuses(ctx context.Context, updates []StatusUpdate) ([]StatusUpdate, error)

	// Close releases the store's resources.
	Close()
}

// Tx is one unit of work: a State to evaluate against, and the records of
// what was decided. Nothing of it is seen by other units or readers until
// Commit; Rollback (or a failed Commit) leaves the store as it was.
type Tx interface {
	State
	// Record keeps an evaluated decision, the message its event carried
	// and the outbound work it queued.
	Record(r Record) error
	// Commit makes every change of the unit visible at once and releases
	// its locks.
	Commit(ctx context.Context) error
	// Rollback throws the unit's changes away and releases its locks. It
	// may be called after Commit, and then does nothing.
	Rollback(ctx context.Context) error
}

// Record is what a unit of work keeps of one evaluated event.
type Record struct {
	Decision schemas.Decision
	// Message is the customer's or the agent's message the event carried,
	// if it carried one.
	Message *schemas.Message
	// Outbound is the decision's outbound work, in the order it was
	// decided.
	Outbound []OutboxItem
}

// OutboxItem is one piece of outbound work: a reply, a template, a Slack
// message or a question to the bot.
type OutboxItem struct {
	// ID is the store's; items of one order key are delivered in ID order.
	ID int64 `json:"id"`
	schemas.Outbound
	// Order is the key items are delivered in order by: the conversation
	// for what goes to the customer or the bot, the channel for Slack.
	Order string `json:"order"`
	// At is the time of the decision that queued it.
	At time.Time `json:"at"`
	// AskedBy is, for ask_bot, the id of the customer message the bot is
	// asked about; empty: the latest customer message.
	AskedBy string `json:"asked_by,omitempty"`
	// Attempts counts the attempts begun, this one included once claimed.
	Attempts int `json:"attempts"`
	// Due is when it may be tried next.
	Due time.Time `json:"due"`
	// Result is pending, delivered or dead (schemas.Delivery*).
	Result string `json:"result"`
	// Error is the latest failure.
	Error string `json:"error,omitempty"`
	// Done is when it was delivered or given up.
	Done time.Time `json:"done,omitzero"`
}

// Delivery is the item as the API shows it.
func (o OutboxItem) Delivery() schemas.Delivery {
	at := o.Done
	if o.Result == schemas.DeliveryPending {
		at = o.Due
	}
	return schemas.Delivery{Key: o.Key, Kind: o.Kind, Result: o.Result, Attempts: o.Attempts, Error: o.Error, At: at}
}

// OrderKey is the order key of outbound work: Slack messages go in order
// per channel, everything else in order per conversation, so a slow Slack
// channel never holds up a customer's replies.
func OrderKey(out schemas.Outbound) string {
	if out.Kind == schemas.OutboundNotify || out.Conversation == "" {
		ch, _ := out.Params["slack"].(string)
		return "slack:" + ch
	}
	return "c:" + out.Conversation
}

// OutboundStats summarises the outbox.
type OutboundStats struct {
	Pending int
	Dead    int
	// NextDue is when the earliest pending item may be tried; zero when
	// none waits.
	NextDue time.Time
}

// StatusUpdate is a WhatsApp delivery status of a message triage sent.
type StatusUpdate struct {
	Conversation string
	MessageID    string // the WhatsApp message id ("wamid....")
	Status       string // sent, delivered, read, failed
	// Key deduplicates redeliveries: the same message id and status.
	Key string
}

// ConversationRecord is everything a store keeps of one conversation.
type ConversationRecord struct {
	Conversation schemas.Conversation
	Notes        []schemas.Note
	Contact      schemas.Contact
	Messages     []schemas.Message
	Decisions    []schemas.Decision
	Deliveries   []schemas.Delivery
}

// ConversationFilter selects conversations. Empty fields select
// everything; Teams, when not nil, keeps only conversations assigned to
// Agent or waiting unassigned in one of Teams (an agent's view).
type ConversationFilter struct {
	Status   string
	Team     string
	Assignee string
	Teams    []string
	Agent    string
	// After and Limit page the list, which is in id order: only ids
	// after After, at most Limit of them (0: all).
	After string
	Limit int
}

// Match reports whether f selects c.
func (f ConversationFilter) Match(c *schemas.Conversation) bool {
	if (f.Status != "" && c.Status != f.Status) || (f.Team != "" && c.Team != f.Team) || (f.Assignee != "" && c.Assignee != f.Assignee) {
		return false
	}
	if f.Teams != nil {
		mine := f.Agent != "" && c.Assignee == f.Agent
		waiting := c.Assignee == ""
		inTeam := false
		for _, t := range f.Teams {
			inTeam = inTeam || t == c.Team
		}
		return mine || (waiting && inTeam)
	}
	return true
}

// StatusRank orders WhatsApp statuses: a status only moves forward, so a
// late "delivered" does not undo "read". Failed is final.
var StatusRank = map[string]int{"": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}

// ContactChanges lists the fields of a contact a unit of work changed, by
// their JSON names. Contacts are not locked (one customer may write on
// two conversations at once), so a store writes back only what changed:
// an opt-out committed meanwhile by another unit is not undone by a unit
// that only read it.
func ContactChanges(before, after schemas.Contact) map[string]any {
	out := map[string]any{}
	if before.Name != after.Name {
		out["name"] = after.Name
	}
	if before.Language != after.Language {
		out["language"] = after.Language
	}
	if before.Phone != after.Phone {
		out["phone"] = after.Phone
	}
	if before.OptedOut != after.OptedOut {
		out["opted_out"] = after.OptedOut
	}
	return out
}

// ApplyContactChanges applies what ContactChanges listed to c.
func ApplyContactChanges(c *schemas.Contact, changes map[string]any) {
	for k, v := range changes {
		switch k {
		case "name":
			c.Name = v.(string)
		case "language":
			c.Language = v.(string)
		case "phone":
			c.Phone = v.(string)
		case "opted_out":
			c.OptedOut = v.(bool)
		}
	}
}
