// Package server is the running daemon behind `triage serve`: it takes
// accepted events, evaluates them one at a time against the running rule
// set, fires SLA deadlines on the wall clock, keeps each conversation's
// audit log, and hands outbound work to a dispatcher that delivers it per
// conversation, in order, with retries.
//
// State is in memory: what was accepted but not yet evaluated or
// delivered is lost if the process dies. The durable store is a later
// step; the command says so in its log.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-dev/triage/connectors/httpapi"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/schemas"
)

// Options configure a Server.
type Options struct {
	Holder   *reload.Holder
	Senders  Senders
	Registry prometheus.Registerer // nil: metrics are not registered
	Logger   *slog.Logger
	// Now is the wall clock for SLA timers and delivery retries; nil is
	// time.Now. Evaluation itself uses each event's time.
	Now func() time.Time
	// QueueSize bounds accepted events waiting for evaluation; when full,
	// Submit refuses (the webhook answers 503 and Meta retries).
	QueueSize int
	// Workers deliver outbound work in parallel across conversations.
	Workers int
	// MaxPending bounds outbound work waiting for delivery: past it,
	// Submit refuses new events (the webhook answers 503 and Meta retries
	// later) rather than let replies queue for minutes. Default 20,000.
	MaxPending int
	// Retry shapes the delivery backoff; zero values take defaults.
	Retry RetryPolicy
}

// Server evaluates events and delivers their side effects.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu        sync.Mutex // guards eng and the records below: one evaluation at a time
	eng       *engine.Engine
	decisions map[string][]schemas.Decision
	messages  map[string][]httpapi.Message
	sent      map[string]msgRef // WhatsApp message id -> its message record
	statuses  map[string]bool   // status keys already recorded
	delivered map[string][]httpapi.Delivery

	queue    chan schemas.Event
	inflight atomic.Int64 // accepted events not yet evaluated
	wake     chan struct{}
	outbox   *outbox

	stop    context.CancelFunc
	wg      sync.WaitGroup
	closing sync.Once
	closed  chan struct{}
}

type msgRef struct {
	conv  string
	index int
}

// New builds a server; Start runs it.
func New(opts Options) (*Server, error) {
	if opts.Holder == nil {
		return nil, errors.New("server: a rule holder is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 20000
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		eng:       engine.New(),
		decisions: map[string][]schemas.Decision{},
		messages:  map[string][]httpapi.Message{},
		sent:      map[string]msgRef{},
		statuses:  map[string]bool{},
		delivered: map[string][]httpapi.Delivery{},
		queue:     make(chan schemas.Event, opts.QueueSize),
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	m, err := newMetrics(opts.Registry, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.outbox = newOutbox(s, opts.Senders, opts.Retry.withDefaults())
	return s, nil
}

// Start runs the evaluation loop, the SLA timer and the dispatcher until
// Close.
func (s *Server) Start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.loop(ctx) }()
	go func() { defer s.wg.Done(); s.timer(ctx) }()
	s.outbox.start(ctx, s.opts.Workers)
}

// Close stops taking events, evaluates those already accepted, and waits
// for the dispatcher to deliver what it can until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Do(func() { close(s.closed) })
	done := make(chan struct{})
	go func() {
		// Evaluating can queue deliveries, and delivering can queue events
		// (the bot's answer): drain both until both are empty.
		for ctx.Err() == nil {
			s.drainQueue(ctx)
			s.outbox.drain(ctx)
			if s.inflight.Load() == 0 && s.outbox.idle() {
				break
			}
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: %w; undelivered work is lost (state is in memory)", ctx.Err())
	}
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	s.outbox.wait()
	return err
}

// drainQueue waits until every accepted event is evaluated, or ctx ends.
func (s *Server) drainQueue(ctx context.Context) {
	for s.inflight.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// Submit accepts events: all of them, or none when one is invalid.
func (s *Server) Submit(ctx context.Context, events []schemas.Event, by string) error {
	select {
	case <-s.closed:
		return errors.New("server is shutting down")
	default:
	}
	for i := range events {
		if err := engine.Validate(&events[i]); err != nil {
			return fmt.Errorf("%w: event %d (%s): %v", httpapi.ErrInvalid, i+1, events[i].ID, err)
		}
	}
	if cap(s.queue)-len(s.queue) < len(events) {
		s.metrics.refused.Inc()
		return errors.New("event queue full: try again")
	}
	if n := s.outbox.pendingCount(); n >= s.opts.MaxPending {
		s.metrics.refused.Inc()
		return fmt.Errorf("%d outbound messages wait for delivery: try again", n)
	}
	for _, ev := range events {
		s.inflight.Add(1)
		select {
		case s.queue <- ev:
		case <-ctx.Done():
			s.inflight.Add(-1)
			return ctx.Err()
		}
	}
	s.log.Debug("events accepted", "count", len(events), "by", by)
	return nil
}

// submitInternal accepts an event triage made itself (the bot's answer,
// an opt-out from a failed send). It waits for room rather than refusing,
// and is taken while shutting down: losing it would leave a customer
// without an answer and without an escalation.
func (s *Server) submitInternal(ctx context.Context, ev schemas.Event) error {
	if err := engine.Validate(&ev); err != nil {
		return err
	}
	s.inflight.Add(1)
	select {
	case s.queue <- ev:
		return nil
	case <-ctx.Done():
		s.inflight.Add(-1)
		return fmt.Errorf("submit %s: %w", ev.ID, ctx.Err())
	}
}

func (s *Server) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.queue:
			s.evaluate(ev)
			s.inflight.Add(-1)
		}
	}
}

// evaluate runs one event: first the SLA deadlines due by its time, as
// replay does, then the event.
func (s *Server) evaluate(ev schemas.Event) {
	s.mu.Lock()
	set := s.opts.Holder.Set() // the event finishes on the set it started with
	fired := s.eng.FireDue(set, ev.At)
	start := time.Now()
	d, err := s.eng.Process(set, &ev)
	elapsed := time.Since(start)
	// The deadlines fired first, so their decisions come first in the
	// audit log (newest last) and their work goes out first.
	for i := range fired {
		s.record(&fired[i])
	}
	q := noQuestion
	if err == nil {
		s.record(&d)
		q = s.questionOf(&d)
	}
	s.mu.Unlock()
	for i := range fired {
		s.dispatch(&fired[i], noQuestion)
	}
	if err != nil {
		s.log.Warn("event refused", "id", ev.ID, "error", err)
		s.poke()
		return
	}
	s.metrics.decision(elapsed)
	s.dispatch(&d, q)
	s.poke()
}

// record keeps a decision in its conversation's audit log and its
// messages; called with mu held.
func (s *Server) record(d *schemas.Decision) {
	s.metrics.observe(d)
	if d.Duplicate || d.Event.Conversation == "" {
		return
	}
	c := d.Event.Conversation
	s.decisions[c] = append(s.decisions[c], *d)
	switch d.Event.Type {
	case schemas.MessageReceived:
		s.messages[c] = append(s.messages[c], httpapi.Message{At: d.Event.At, From: "customer", Text: d.Event.Text})
	case schemas.AgentReplied:
		s.messages[c] = append(s.messages[c], httpapi.Message{At: d.Event.At, From: "agent:" + d.Event.Agent, Text: d.Event.Text})
	}
}

// question is what an ask_bot action of a decision asks the bot about:
// the customer message the decision is for, and how many messages of the
// conversation came before it (the bot's history). Without it (history
// -1: the decision is not for a customer message) the bot is asked about
// the latest customer message.
type question struct {
	text    string
	history int
}

var noQuestion = question{history: -1}

// questionOf is d's question; called with mu held, right after record(d).
func (s *Server) questionOf(d *schemas.Decision) question {
	if d.Duplicate || d.Event.Type != schemas.MessageReceived || d.Event.Conversation == "" {
		return noQuestion
	}
	return question{text: d.Event.Text, history: len(s.messages[d.Event.Conversation]) - 1}
}

func (s *Server) dispatch(d *schemas.Decision, q question) {
	for _, out := range d.Outbound {
		s.outbox.enqueue(out, d.Event.At, q)
	}
}

// poke tells the SLA timer that the next deadline may have moved.
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// timer fires SLA deadlines when the wall clock reaches them.
func (s *Server) timer(ctx context.Context) {
	for {
		s.mu.Lock()
		next, ok := s.eng.NextDeadline()
		s.mu.Unlock()
		wait := time.Minute
		if ok {
			wait = max(0, next.Sub(s.now()))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		s.mu.Lock()
		fired := s.eng.FireDue(s.opts.Holder.Set(), s.now())
		for i := range fired {
			s.record(&fired[i])
		}
		s.mu.Unlock()
		for i := range fired {
			s.dispatch(&fired[i], noQuestion)
		}
	}
}

// Statuses records WhatsApp delivery statuses on the messages they are
// about, once per status id and status.
func (s *Server) Statuses(_ context.Context, statuses []whatsapp.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		if s.statuses[st.Key()] {
			continue
		}
		s.statuses[st.Key()] = true
		ref, ok := s.sent[st.ID]
		if !ok {
			continue
		}
		m := &s.messages[ref.conv][ref.index]
		// Webhooks may arrive out of order: a status only moves forward,
		// so a late "delivered" does not undo "read". Failed is final.
		if statusRank[st.Status] > statusRank[m.Status] {
			m.Status = st.Status
		}
		if st.Status == "failed" {
			s.metrics.whatsappFailed.WithLabelValues(strconv.Itoa(st.ErrorCode)).Inc()
			s.log.Warn("whatsapp reports a message failed", "conversation", ref.conv, "code", st.ErrorCode, "title", st.ErrorTitle, "details", st.ErrorDetails)
			if st.ErrorCode == whatsapp.CodeReEngagement {
				s.eng.CloseWindow(ref.conv)
			}
		}
	}
	return nil
}

var statusRank = map[string]int{"": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}

// noteDelivery records what became of an outbound item of a conversation.
func (s *Server) noteDelivery(out schemas.Outbound, result string, attempts int, err error) {
	if out.Conversation == "" {
		return
	}
	d := httpapi.Delivery{Key: out.Key, Kind: out.Kind, Result: result, Attempts: attempts, At: s.now().UTC()}
	if err != nil {
		d.Error = err.Error()
	}
	s.mu.Lock()
	s.delivered[out.Conversation] = append(s.delivered[out.Conversation], d)
	s.mu.Unlock()
}

// noteSent records a message the dispatcher delivered to a customer.
func (s *Server) noteSent(conv, text, id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages[conv] = append(s.messages[conv], httpapi.Message{At: at, From: "triage", Text: text, Status: "sent"})
	if id != "" {
		s.sent[id] = msgRef{conv: conv, index: len(s.messages[conv]) - 1}
	}
}

// Conversation returns one conversation's view.
func (s *Server) Conversation(_ context.Context, id string) (httpapi.ConversationView, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.eng.Conversation(id)
	if !ok {
		return httpapi.ConversationView{}, false, nil
	}
	contact, _ := s.eng.Contact(c.Contact)
	v := httpapi.ConversationView{
		Conversation: c.Conversation,
		Contact:      contact,
		Messages:     append([]httpapi.Message{}, s.messages[id]...),
		Notes:        []httpapi.Note{},
		Decisions:    append([]schemas.Decision{}, s.decisions[id]...),
		Deliveries:   append([]httpapi.Delivery{}, s.delivered[id]...),
	}
	for _, n := range c.Notes {
		v.Notes = append(v.Notes, httpapi.Note{At: n.At, Text: n.Text, Author: n.Author})
	}
	return v, true, nil
}

// Conversations lists conversations matching f.
func (s *Server) Conversations(_ context.Context, f httpapi.Filter) ([]httpapi.ConversationSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []httpapi.ConversationSummary{}
	for _, id := range s.eng.ConversationIDs() {
		c, _ := s.eng.Conversation(id)
		if (f.Status != "" && c.Status != f.Status) || (f.Team != "" && c.Team != f.Team) || (f.Assignee != "" && c.Assignee != f.Assignee) {
			continue
		}
		if f.Teams != nil {
			mine := f.Agent != "" && c.Assignee == f.Agent
			queued := c.Assignee == "" && contains(f.Teams, c.Team)
			if !mine && !queued {
				continue
			}
		}
		out = append(out, httpapi.ConversationSummary{Conversation: c.Conversation})
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Rules reports the running rule set and the latest reload.
func (s *Server) Rules(context.Context) httpapi.RulesStatus {
	st := s.opts.Holder.Status()
	rs := httpapi.RulesStatus{Version: st.Version, Files: st.Files, Rules: st.Rules, LoadedAt: st.LoadedAt, LastAttempt: st.LastAttempt, OK: st.OK, LastError: st.LastError}
	for _, p := range st.Problems {
		rs.Problems = append(rs.Problems, p.Error())
	}
	return rs
}

// Reload reloads the rules now.
func (s *Server) Reload(context.Context) error {
	err := s.opts.Holder.Reload()
	if errors.Is(err, reload.ErrUnchanged) {
		return nil
	}
	return err
}

// Ready reports whether the server takes traffic.
func (s *Server) Ready(context.Context) error {
	select {
	case <-s.closed:
		return errors.New("shutting down")
	default:
	}
	if len(s.queue) == cap(s.queue) {
		return errors.New("event queue full")
	}
	if n := s.outbox.pendingCount(); n >= s.opts.MaxPending {
		return fmt.Errorf("%d outbound messages wait for delivery", n)
	}
	return nil
}

var _ httpapi.Backend = (*Server)(nil)
