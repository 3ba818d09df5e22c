package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/schemas"
)

// WhatsAppSender sends messages to customers; connectors/whatsapp's Client
// satisfies it.
type WhatsAppSender interface {
	SendText(ctx context.Context, to, text, key string) (string, error)
	SendTemplate(ctx context.Context, to, name, language string, params []string, key string) (string, error)
}

// SlackPoster posts to a channel; connectors/slack's Client satisfies it.
type SlackPoster interface {
	Post(ctx context.Context, channel, text, key string) error
}

// BotQuestion is what the bot is asked.
type BotQuestion struct {
	Conversation string
	Contact      schemas.Contact
	Text         string
	History      []schemas.Message
}

// BotAnswer is the bot's answer.
type BotAnswer struct {
	Text       string
	Confidence float64
	Topic      string
	Resolved   bool
}

// BotAsker asks the bot; the command adapts connectors/bot to it.
type BotAsker interface {
	AskBot(ctx context.Context, q BotQuestion) (BotAnswer, error)
}

// Senders are the connectors outbound work goes to. A nil one writes the
// work to the log instead, so the daemon runs with nothing configured.
type Senders struct {
	WhatsApp WhatsAppSender
	Slack    SlackPoster
	Bot      BotAsker
}

// RetryPolicy shapes delivery retries: exponential backoff from Base,
// doubled per attempt up to Max, with jitter, at least a connector's
// Retry-After, and given up (the item is dead) after Attempts.
type RetryPolicy struct {
	Base     time.Duration
	Max      time.Duration
	Attempts int
	// BotAttempts bounds tries of the bot: a customer should not wait
	// minutes for a bot that is down; after them the rules hear it was
	// not confident, and escalate.
	BotAttempts int
	// Timeout bounds one attempt; default 30 s.
	Timeout time.Duration
	// Lease is how long a claimed item is held for its deliverer before
	// another may claim it again (its deliverer died); default 90 s, and
	// at least twice Timeout.
	Lease time.Duration
}

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.Base <= 0 {
		r.Base = time.Second
	}
	if r.Max <= 0 {
		r.Max = 5 * time.Minute
	}
	if r.Attempts <= 0 {
		r.Attempts = 12
	}
	if r.BotAttempts <= 0 {
		r.BotAttempts = 2
	}
	if r.Timeout <= 0 {
		r.Timeout = 30 * time.Second
	}
	if r.Lease <= 0 {
		r.Lease = 90 * time.Second
	}
	r.Lease = max(r.Lease, 2*r.Timeout)
	return r
}

func (r RetryPolicy) backoff(attempt int, err error) time.Duration {
	d := r.Base << min(attempt, 20)
	if d > r.Max || d <= 0 {
		d = r.Max
	}
	// Jitter spreads retries of many items failing together.
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > d {
		d = ra.RetryAfter()
	}
	return d
}

func retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	// An error that does not say is a network or context failure of our
	// own: worth another try.
	return !errors.Is(err, errPermanent)
}

var errPermanent = errors.New("permanent")

// dispatcher delivers the store's outbound work: it claims the items due,
// the oldest of each order key only, delivers each once, and records what
// happened; the store keeps the order per key across retries, crashes
// and replicas.
type dispatcher struct {
	s       *Server
	senders Senders
	retry   RetryPolicy

	wake     chan struct{}
	sem      chan struct{} // WhatsApp sends and bot questions in flight
	inflight atomic.Int64
	wg       sync.WaitGroup

	statsAt time.Time // when the outbox was last counted
}

func newDispatcher(s *Server, senders Senders, retry RetryPolicy) *dispatcher {
	return &dispatcher{s: s, senders: senders, retry: retry, wake: make(chan struct{}, 1), sem: make(chan struct{}, s.opts.Workers)}
}

// kick wakes the dispatcher: there may be new work, or a key's next item.
func (d *dispatcher) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// claimLinger is how long the dispatcher, woken with a shared store,
// lets kicks gather before it claims. Each claim is a transaction whose
// fixed cost PostgreSQL pays on the cores units of work need
// (BenchmarkServePostgres: at 1,000 webhooks a second, 1 ms made claims
// of two items); it delays a reply by at most this much.
const claimLinger = 3 * time.Millisecond

// maxInflight bounds the items claimed and not yet finished: the workers'
// sends plus Slack posts, which wait for their channel's pace instead.
func (d *dispatcher) maxInflight() int { return 256 }

func (d *dispatcher) run(ctx context.Context) {
	defer d.wg.Wait()
	failures := 0
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for ctx.Err() == nil {
		full, err := d.claim(ctx)
		if err != nil {
			failures++
			wait := d.retry.backoff(min(failures, 6), nil)
			d.s.log.Error("claiming outbound work failed; trying again", "in", wait, "error", err)
			sleep(ctx, wait)
			continue
		}
		failures = 0
		if full {
			continue // more may be due
		}
		wait := d.s.opts.Poll
		if d.s.memory {
			wait = time.Hour // only this process adds work, and it kicks
		}
		st, counted := d.stats(ctx)
		// With every slot taken, what is due waits for a delivery to end,
		// which kicks: waking for it now would find no room and spin.
		if counted && !st.NextDue.IsZero() && d.inflight.Load() < int64(d.maxInflight()) {
			wait = min(wait, max(0, st.NextDue.Sub(d.s.now())))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
		case <-d.wake:
			if !d.s.memory {
				// Under load every commit and every delivery kicks; a
				// claim is a transaction, so a burst of kicks becomes one.
				sleep(ctx, claimLinger)
			}
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// claim leases what is due and starts delivering it; full reports that it
// claimed as many as it asked for.
func (d *dispatcher) claim(ctx context.Context) (full bool, err error) {
	n := d.maxInflight() - int(d.inflight.Load())
	if n <= 0 {
		return false, nil
	}
	items, err := d.s.store.Claim(ctx, d.s.now().UTC(), n, d.retry.Lease)
	if err != nil {
		return false, err
	}
	for _, it := range items {
		d.inflight.Add(1)
		d.wg.Add(1)
		go d.deliver(ctx, it)
	}
	return len(items) == n, nil
}

// stats counts the outbox for backpressure and metrics: each time with
// the memory store, at most every quarter second with a shared one.
func (d *dispatcher) stats(ctx context.Context) (engine.OutboundStats, bool) {
	now := time.Now()
	if !d.s.memory && now.Sub(d.statsAt) < 250*time.Millisecond {
		return engine.OutboundStats{}, false
	}
	st, err := d.s.store.Outbound(ctx)
	if err != nil {
		d.s.log.Warn("counting outbound work failed", "error", err)
		return st, false
	}
	d.statsAt = now
	d.s.pending.Store(int64(st.Pending))
	d.s.metrics.outboxPending.Set(float64(st.Pending))
	d.s.metrics.outboxDead.Set(float64(st.Dead))
	return st, true
}

// idle waits until no delivery is in flight and, when all is true, until
// nothing waits either, or ctx ends.
func (d *dispatcher) idle(ctx context.Context, all bool) {
	for ctx.Err() == nil {
		if d.inflight.Load() == 0 {
			if !all {
				return
			}
			if st, err := d.s.store.Outbound(ctx); err == nil && st.Pending == 0 {
				return
			}
			d.kick()
		}
		sleep(ctx, 5*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver makes one attempt at an item and records its result: delivered,
// to be retried (the key's later items wait), or dead.
func (d *dispatcher) deliver(ctx context.Context, it engine.OutboxItem) {
	defer func() {
		d.inflight.Add(-1)
		d.wg.Done()
		d.kick()
	}()
	connector := connectorOf(it.Kind)
	sent, err := d.send(ctx, it)
	if errors.Is(err, errStopping) {
		return // the lease runs out and the item is claimed again
	}
	// The attempt is over: what it did is recorded even while stopping.
	rctx := context.WithoutCancel(ctx)
	now := d.s.now().UTC()
	limit := d.retry.Attempts
	if it.Kind == schemas.OutboundAskBot {
		limit = d.retry.BotAttempts
	}
	switch {
	case err == nil:
		d.s.metrics.delivered(connector, "delivered")
		err = d.s.store.Delivered(rctx, it, now, sent)
	case retryable(err) && it.Attempts < limit:
		d.s.metrics.delivered(connector, "retry")
		wait := d.retry.backoff(it.Attempts-1, err)
		d.s.log.Warn("delivery failed; retrying", "key", it.Key, "kind", it.Kind, "attempt", it.Attempts, "in", wait, "error", err)
		err = d.s.store.Retry(rctx, it, now.Add(wait), err.Error())
	default:
		d.s.metrics.delivered(connector, "dead")
		d.s.log.Error("delivery given up", "key", it.Key, "kind", it.Kind, "conversation", it.Conversation, "attempts", it.Attempts, "error", err)
		cause := err
		if err = d.s.store.Dead(rctx, it, now, cause.Error()); err == nil {
			d.dead(rctx, it, cause)
		}
	}
	if err != nil {
		// The lease runs out and the item is claimed again: delivered at
		// least once.
		d.s.log.Error("recording a delivery's result failed", "key", it.Key, "error", err)
	}
}

// errStopping says an attempt did not start: the server is stopping.
var errStopping = errors.New("stopping")

// slot runs a WhatsApp send or a bot question holding one of the worker
// slots that bound them. Slack takes none: its client paces each channel
// itself (a second or more between posts), and waiting for a channel's
// turn must not hold up every customer's messages. Nor does evaluating
// the bot's answer: it waits for its shard, not for the bot.
func (d *dispatcher) slot(ctx context.Context, call func() error) error {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return errStopping
	}
	defer func() { <-d.sem }()
	return call()
}

func connectorOf(kind string) string {
	switch kind {
	case schemas.OutboundNotify:
		return "slack"
	case schemas.OutboundAskBot:
		return "bot"
	}
	return "whatsapp"
}

func str(p map[string]any, k string) string {
	s, _ := p[k].(string)
	return s
}

// send makes one attempt; sent is the message it sent a customer, for the
// conversation's messages.
func (d *dispatcher) send(ctx context.Context, it engine.OutboxItem) (sent *schemas.Message, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.retry.Timeout)
	defer cancel()
	log := d.s.log
	message := func(text, id string) *schemas.Message {
		return &schemas.Message{At: d.s.now().UTC(), From: "triage", Text: text, ID: id, Status: "sent"}
	}
	switch it.Kind {
	case schemas.OutboundReply:
		text := str(it.Params, "text")
		if d.senders.WhatsApp == nil {
			log.Info("outbound reply (no whatsapp configured: logged, not sent)", "to", it.Contact, "conversation", it.Conversation, "text", text, "key", it.Key)
			return message(text, ""), nil
		}
		var id string
		err := d.slot(ctx, func() (err error) {
			id, err = d.senders.WhatsApp.SendText(ctx, it.Contact, text, it.Key)
			return err
		})
		if err != nil {
			return nil, err
		}
		return message(text, id), nil
	case schemas.OutboundTemplate:
		var params []string
		if l, ok := it.Params["params"].([]any); ok {
			for _, p := range l {
				params = append(params, fmt.Sprint(p))
			}
		}
		name, lang := str(it.Params, "name"), str(it.Params, "language")
		if d.senders.WhatsApp == nil {
			log.Info("outbound template (no whatsapp configured: logged, not sent)", "to", it.Contact, "name", name, "language", lang, "params", params, "key", it.Key)
			return message("template "+name, ""), nil
		}
		var id string
		err := d.slot(ctx, func() (err error) {
			id, err = d.senders.WhatsApp.SendTemplate(ctx, it.Contact, name, lang, params, it.Key)
			return err
		})
		if err != nil {
			return nil, err
		}
		return message("template "+name, id), nil
	case schemas.OutboundNotify:
		channel, text := str(it.Params, "slack"), str(it.Params, "text")
		if d.senders.Slack == nil {
			log.Info("slack notification (no slack configured: logged, not sent)", "channel", channel, "text", text, "key", it.Key)
			return nil, nil
		}
		return nil, d.senders.Slack.Post(ctx, channel, text, it.Key)
	case schemas.OutboundAskBot:
		return nil, d.askBot(ctx, it)
	}
	return nil, fmt.Errorf("%w: unknown outbound kind %q", errPermanent, it.Kind)
}

// askBot asks the bot and evaluates its answer as a bot.answered event.
func (d *dispatcher) askBot(ctx context.Context, it engine.OutboxItem) error {
	q := BotQuestion{Conversation: it.Conversation}
	msgs, err := d.s.store.Messages(ctx, it.Conversation)
	if err != nil {
		return err
	}
	if c, ok, err := d.s.store.Contact(ctx, it.Contact); err != nil {
		return err
	} else if ok {
		q.Contact = c
	}
	// The bot answers the message that asked it, with what came before
	// it as history: by the time this item is delivered the customer may
	// have written again, and each message gets its own answer.
	q.Text, q.History = "", msgs
	asked := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if (it.AskedBy != "" && msgs[i].Event == it.AskedBy) || (it.AskedBy == "" && msgs[i].From == "customer") {
			asked = i
			break
		}
	}
	if asked >= 0 {
		q.Text, q.History = msgs[asked].Text, msgs[:asked]
	}
	var ans BotAnswer
	if d.senders.Bot == nil {
		d.s.log.Info("no bot configured: answering not confident so the rules escalate", "conversation", it.Conversation)
	} else {
		err := d.slot(ctx, func() (err error) {
			ans, err = d.senders.Bot.AskBot(ctx, q)
			return err
		})
		if err != nil {
			return err
		}
	}
	return d.answer(ctx, it, ans)
}

// answer evaluates the bot's answer as a bot.answered event, timed now but
// never before the event that asked (event times may lag the wall clock).
// Its id is the item's, so a question asked twice (a retry after a crash)
// is answered once.
func (d *dispatcher) answer(ctx context.Context, it engine.OutboxItem, ans BotAnswer) error {
	at := d.s.now().UTC()
	if at.Before(it.At) {
		at = it.At
	}
	ev := schemas.Event{
		ID: "bot:" + it.Key, Type: schemas.BotAnswered, At: at, Conversation: it.Conversation,
		Text: ans.Text, Confidence: ans.Confidence, Topic: ans.Topic, Resolved: ans.Resolved,
	}
	if err := d.s.submitInternal(ctx, ev); err != nil {
		return fmt.Errorf("evaluate the bot's answer: %w", err)
	}
	return nil
}

// dead acts on what an item given up means.
func (d *dispatcher) dead(ctx context.Context, it engine.OutboxItem, err error) {
	switch it.Kind {
	case schemas.OutboundAskBot:
		// The bot failed: the rules hear it was not confident, and escalate.
		if err := d.answer(ctx, it, BotAnswer{Topic: "bot_error"}); err != nil {
			d.s.log.Error("could not hand the rules a not-confident answer; the conversation waits", "conversation", it.Conversation, "error", err)
		}
	case schemas.OutboundReply, schemas.OutboundTemplate:
		var we *whatsapp.Error
		if errors.As(err, &we) && we.WindowClosed {
			if err := d.s.closeWindow(ctx, it.Conversation); err != nil {
				d.s.log.Error("could not record the closed window", "conversation", it.Conversation, "error", err)
			}
		}
		if errors.As(err, &we) && we.OptedOut {
			ev := schemas.Event{ID: "optout:" + it.Key, Type: schemas.ContactOptedOut, At: d.s.now().UTC(), Conversation: it.Conversation}
			if err := d.s.submitInternal(ctx, ev); err != nil {
				d.s.log.Error("could not record the contact's opt-out", "conversation", it.Conversation, "error", err)
			}
		}
	}
}
