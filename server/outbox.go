package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/triage-dev/triage/connectors/httpapi"
	"github.com/triage-dev/triage/connectors/whatsapp"
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
	History      []httpapi.Message
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

type item struct {
	out schemas.Outbound
	at  time.Time // the decision's time
	q   question  // what an ask_bot asks
}

// outbox delivers outbound work: per key (conversation, or Slack channel
// for work without one) strictly in order, different keys in parallel.
type outbox struct {
	s       *Server
	senders Senders
	retry   RetryPolicy

	mu      sync.Mutex
	queues  map[string][]item
	running map[string]bool
	pending int
	sem     chan struct{}
	ctx     context.Context
	wg      sync.WaitGroup
}

func newOutbox(s *Server, senders Senders, retry RetryPolicy) *outbox {
	return &outbox{s: s, senders: senders, retry: retry, queues: map[string][]item{}, running: map[string]bool{}}
}

func (o *outbox) start(ctx context.Context, workers int) {
	o.mu.Lock()
	o.ctx = ctx
	o.sem = make(chan struct{}, workers)
	keys := make([]string, 0, len(o.queues))
	for k := range o.queues {
		keys = append(keys, k)
	}
	o.mu.Unlock()
	for _, k := range keys {
		o.kick(k)
	}
}

func key(out schemas.Outbound) string {
	if out.Conversation != "" {
		return "c:" + out.Conversation
	}
	ch, _ := out.Params["slack"].(string)
	return "slack:" + ch
}

func (o *outbox) enqueue(out schemas.Outbound, at time.Time, q question) {
	k := key(out)
	o.mu.Lock()
	o.queues[k] = append(o.queues[k], item{out: out, at: at, q: q})
	o.pending++
	o.mu.Unlock()
	o.s.metrics.outboxPending.Inc()
	o.kick(k)
}

// kick starts a goroutine draining key k unless one already does.
func (o *outbox) kick(k string) {
	o.mu.Lock()
	if o.running[k] || o.ctx == nil || len(o.queues[k]) == 0 {
		o.mu.Unlock()
		return
	}
	o.running[k] = true
	o.wg.Add(1)
	o.mu.Unlock()
	go o.run(k)
}

func (o *outbox) run(k string) {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		q := o.queues[k]
		if len(q) == 0 {
			delete(o.queues, k)
			o.running[k] = false
			o.mu.Unlock()
			return
		}
		it := q[0]
		o.mu.Unlock()

		if !o.deliver(it) {
			o.mu.Lock()
			o.running[k] = false
			o.mu.Unlock()
			return // stopping: the item stays queued
		}
		o.mu.Lock()
		o.queues[k] = o.queues[k][1:]
		o.pending--
		o.mu.Unlock()
		o.s.metrics.outboxPending.Dec()
	}
}

// deliver tries one item until it is delivered, dead, or the server stops
// (false). The next item of the same key waits: order per customer holds
// across retries.
func (o *outbox) deliver(it item) bool {
	connector := connectorOf(it.out.Kind)
	limit := o.retry.Attempts
	if it.out.Kind == schemas.OutboundAskBot {
		limit = o.retry.BotAttempts
	}
	for attempt := 0; ; attempt++ {
		stopping, err := o.attempt(it)
		if stopping {
			return false
		}
		if err == nil {
			o.s.metrics.delivered(connector, "delivered")
			o.s.noteDelivery(it.out, "delivered", attempt+1, nil)
			return true
		}
		if !retryable(err) || attempt+1 >= limit {
			o.s.metrics.delivered(connector, "dead")
			o.s.noteDelivery(it.out, "dead", attempt+1, err)
			o.dead(it, err)
			return true
		}
		o.s.metrics.delivered(connector, "retry")
		wait := o.retry.backoff(attempt, err)
		o.s.log.Warn("delivery failed; retrying", "key", it.out.Key, "kind", it.out.Kind, "attempt", attempt+1, "in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-o.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// attempt sends it once, holding one of the worker slots that bound the
// sends in flight. The slot is held for the send only, never across a
// retry's backoff; and a Slack post takes none, because the Slack client
// paces each channel itself (a second or more between posts): waiting for
// a channel's turn, or for a retry, must not hold up every customer's
// messages. stopping reports that the server stopped first.
func (o *outbox) attempt(it item) (stopping bool, err error) {
	if it.out.Kind != schemas.OutboundNotify {
		select {
		case o.sem <- struct{}{}:
			defer func() { <-o.sem }()
		case <-o.ctx.Done():
			return true, nil
		}
	}
	return false, o.send(it)
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

func (o *outbox) send(it item) error {
	ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
	defer cancel()
	out, log := it.out, o.s.log
	switch out.Kind {
	case schemas.OutboundReply:
		text := str(out.Params, "text")
		if o.senders.WhatsApp == nil {
			log.Info("outbound reply (no whatsapp configured: logged, not sent)", "to", out.Contact, "conversation", out.Conversation, "text", text, "key", out.Key)
			o.s.noteSent(out.Conversation, text, "", o.s.now())
			return nil
		}
		id, err := o.senders.WhatsApp.SendText(ctx, out.Contact, text, out.Key)
		if err == nil {
			o.s.noteSent(out.Conversation, text, id, o.s.now())
		}
		return err
	case schemas.OutboundTemplate:
		var params []string
		if l, ok := out.Params["params"].([]any); ok {
			for _, p := range l {
				params = append(params, fmt.Sprint(p))
			}
		}
		name, lang := str(out.Params, "name"), str(out.Params, "language")
		if o.senders.WhatsApp == nil {
			log.Info("outbound template (no whatsapp configured: logged, not sent)", "to", out.Contact, "name", name, "language", lang, "params", params, "key", out.Key)
			o.s.noteSent(out.Conversation, "template "+name, "", o.s.now())
			return nil
		}
		id, err := o.senders.WhatsApp.SendTemplate(ctx, out.Contact, name, lang, params, out.Key)
		if err == nil {
			o.s.noteSent(out.Conversation, "template "+name, id, o.s.now())
		}
		return err
	case schemas.OutboundNotify:
		channel, text := str(out.Params, "slack"), str(out.Params, "text")
		if o.senders.Slack == nil {
			log.Info("slack notification (no slack configured: logged, not sent)", "channel", channel, "text", text, "key", out.Key)
			return nil
		}
		return o.senders.Slack.Post(ctx, channel, text, out.Key)
	case schemas.OutboundAskBot:
		return o.askBot(ctx, it)
	}
	return fmt.Errorf("%w: unknown outbound kind %q", errPermanent, out.Kind)
}

// askBot asks the bot and feeds its answer back as a bot.answered event.
func (o *outbox) askBot(ctx context.Context, it item) error {
	out := it.out
	q := BotQuestion{Conversation: out.Conversation}
	o.s.mu.Lock()
	msgs := append([]httpapi.Message{}, o.s.messages[out.Conversation]...)
	if c, ok := o.s.eng.Contact(out.Contact); ok {
		q.Contact = c
	}
	o.s.mu.Unlock()
	// The bot answers the message that asked it, with what came before
	// it as history: by the time this item is delivered the customer may
	// have written again, and each message gets its own answer.
	if h := it.q.history; h >= 0 && h < len(msgs) {
		q.Text, q.History = it.q.text, msgs[:h]
	} else {
		q.History = msgs
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].From == "customer" {
				q.Text, q.History = msgs[i].Text, msgs[:i]
				break
			}
		}
	}
	var ans BotAnswer
	if o.senders.Bot == nil {
		o.s.log.Info("no bot configured: answering not confident so the rules escalate", "conversation", out.Conversation)
	} else {
		a, err := o.senders.Bot.AskBot(ctx, q)
		if err != nil {
			return err
		}
		ans = a
	}
	return o.answer(it, ans)
}

// answer submits the bot's answer as a bot.answered event, timed now but
// never before the event that asked (event times may lag the wall clock).
func (o *outbox) answer(it item, ans BotAnswer) error {
	out := it.out
	at := o.s.now().UTC()
	if at.Before(it.at) {
		at = it.at
	}
	ev := schemas.Event{
		ID: "bot:" + out.Key, Type: schemas.BotAnswered, At: at, Conversation: out.Conversation,
		Text: ans.Text, Confidence: ans.Confidence, Topic: ans.Topic, Resolved: ans.Resolved,
	}
	if err := o.s.submitInternal(o.ctx, ev); err != nil {
		return fmt.Errorf("submit the bot's answer: %w", err)
	}
	return nil
}

// dead gives up an item: logged, counted, and what it means acted on.
func (o *outbox) dead(it item, err error) {
	out := it.out
	o.s.log.Error("delivery given up", "key", out.Key, "kind", out.Kind, "conversation", out.Conversation, "error", err)
	switch out.Kind {
	case schemas.OutboundAskBot:
		// The bot failed: the rules hear it was not confident, and escalate.
		if err := o.answer(it, BotAnswer{Topic: "bot_error"}); err != nil {
			o.s.log.Error("could not hand the rules a not-confident answer; the conversation waits", "conversation", out.Conversation, "error", err)
		}
	case schemas.OutboundReply, schemas.OutboundTemplate:
		var we *whatsapp.Error
		if errors.As(err, &we) && we.WindowClosed {
			o.s.mu.Lock()
			o.s.eng.CloseWindow(out.Conversation)
			o.s.mu.Unlock()
		}
		if errors.As(err, &we) && we.OptedOut {
			ev := schemas.Event{ID: "optout:" + out.Key, Type: schemas.ContactOptedOut, At: o.s.now().UTC(), Conversation: out.Conversation}
			if err := o.s.submitInternal(o.ctx, ev); err != nil {
				o.s.log.Error("could not record the contact's opt-out", "conversation", out.Conversation, "error", err)
			}
		}
	}
}

// drain waits until nothing is pending or ctx ends.
func (o *outbox) drain(ctx context.Context) {
	for {
		o.mu.Lock()
		n := o.pending
		o.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (o *outbox) wait() { o.wg.Wait() }

// pendingCount is how many items wait for delivery.
func (o *outbox) pendingCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}

// idle reports whether nothing is pending.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending == 0
}
