// Package server is the running daemon behind `triage serve`: it
// evaluates accepted events against the running rule set in units of work
// of its store, fires SLA deadlines on the wall clock, and delivers the
// outbound work decisions queue, per customer in order, with retries.
//
// Events of one conversation are evaluated one at a time, in order;
// events of different conversations in parallel, by shards that each
// commit a batch of events in one unit of work when traffic is heavy. An
// event is acknowledged (Submit returns) only once its unit committed:
// with a durable store, nothing acknowledged is lost.
package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
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
	Holder *reload.Holder
	// Store keeps the state; nil is a new engine.MemoryStore.
	Store    engine.Store
	Senders  Senders
	Registry prometheus.Registerer // nil: metrics are not registered
	Logger   *slog.Logger
	// Now is the wall clock for SLA timers and deliveries; nil is
	// time.Now. Evaluation itself uses each event's time.
	Now func() time.Time
	// Shards evaluate conversations in parallel, each conversation always
	// on the same shard; default DefaultShards.
	Shards int
	// QueueSize bounds the events waiting for each shard; when full,
	// Submit refuses (the webhook answers 503 and Meta retries).
	// Default 4,096.
	QueueSize int
	// MaxBatch bounds how many waiting events a shard evaluates in one
	// unit of work; default 64. Under light traffic a unit holds one.
	MaxBatch int
	// Workers bound the WhatsApp sends and bot questions in flight;
	// default 8. Slack is paced per channel by its client instead.
	Workers int
	// MaxPending bounds outbound work waiting for delivery: past it,
	// Submit refuses new events (the webhook answers 503 and Meta retries
	// later) rather than let replies queue for minutes. Default 20,000.
	MaxPending int
	// Retry shapes the delivery backoff; zero values take defaults.
	Retry RetryPolicy
	// Poll is how often, with a shared store, the timer and the
	// dispatcher look for work another replica queued, and so how late an
	// SLA deadline planned meanwhile may fire; default 1 s. Outbound work
	// this process queues wakes the dispatcher at once.
	Poll time.Duration
}

// Server evaluates events and delivers their side effects.
type Server struct {
	opts    Options
	store   engine.Store
	memory  bool // the store is this process's memory: drain it all at shutdown
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	shards  []chan job
	busy    atomic.Int64 // jobs accepted and not yet done
	timerCh chan struct{}
	disp    *dispatcher

	pending atomic.Int64 // outbound items waiting, as last counted

	stop    context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup
	closing sync.Once
	closed  chan struct{}
}

// job is one event waiting for its shard.
type job struct {
	ev   schemas.Event
	done chan error
}

// New builds a server; Start runs it.
// DefaultShards is the number of shards when Options sets none: with the
// memory store GOMAXPROCS, at least 2, since a shard is bound by
// evaluation, a CPU's work, and more shards than CPUs run no more at
// once; with a shared store (PostgreSQL) half that, at least 1, since a
// shard there mostly waits for its round trips while the next events
// gather, and a commit costs about the same for one event or sixty:
// fewer shards make bigger batches. BenchmarkServePostgres on 2 CPUs,
// with PostgreSQL on the same machine: 1 shard batched 16 events a unit
// at full load against 2 shards' 8, at the same throughput, and at 1,000
// webhooks/s had a p99 of 30-35 ms against 38-59 ms. A shard waiting for
// a conversation another replica holds holds up the events behind it, so
// more shards also shorten such waits: set Shards where replicas often
// share conversations.
func DefaultShards(memory bool) int {
	if memory {
		return max(2, runtime.GOMAXPROCS(0))
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}

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
	if opts.Store == nil {
		opts.Store = engine.NewMemoryStore()
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 20000
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	_, memory := opts.Store.(*engine.MemoryStore)
	if opts.Shards <= 0 {
		opts.Shards = DefaultShards(memory)
	}
	s := &Server{
		opts:    opts,
		store:   opts.Store,
		memory:  memory,
		log:     opts.Logger,
		now:     opts.Now,
		timerCh: make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}
	for range opts.Shards {
		s.shards = append(s.shards, make(chan job, opts.QueueSize))
	}
	m, err := newMetrics(opts.Registry, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.disp = newDispatcher(s, opts.Senders, opts.Retry.withDefaults())
	return s, nil
}

// Start runs the shards, the SLA timer and the dispatcher until Close.
func (s *Server) Start(ctx context.Context) {
	s.ctx, s.stop = context.WithCancel(ctx)
	for i := range s.shards {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.shard(s.ctx, s.shards[i]) }()
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.timer(s.ctx) }()
	go func() { defer s.wg.Done(); s.disp.run(s.ctx) }()
}

// Close stops taking events, finishes those accepted, and waits for the
// dispatcher until ctx ends: with the memory store, until every outbound
// item is delivered or dead (what is left is lost); with a durable store,
// until the deliveries in flight end (the rest waits in the store).
func (s *Server) Close(ctx context.Context) error {
	s.closing.Do(func() { close(s.closed) })
	var err error
	for {
		s.waitBusy(ctx)
		s.disp.idle(ctx, s.memory)
		if ctx.Err() != nil {
			err = fmt.Errorf("shutdown: %w", ctx.Err())
			if s.memory {
				st, _ := s.store.Outbound(context.Background())
				err = fmt.Errorf("%w; %d outbound items undelivered are lost (state is in memory)", err, st.Pending)
			}
			break
		}
		// Delivering can submit events (the bot's answer) and evaluating
		// can queue deliveries: done when both are still.
		if s.jobsWaiting() == 0 && s.disp.inflight.Load() == 0 {
			if !s.memory {
				break
			}
			if st, e := s.store.Outbound(ctx); e == nil && st.Pending == 0 {
				break
			}
		}
	}
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	return err
}

func (s *Server) jobsWaiting() int {
	n := 0
	for _, ch := range s.shards {
		n += len(ch)
	}
	return n
}

// waitBusy waits until every accepted job is done, or ctx ends.
func (s *Server) waitBusy(ctx context.Context) {
	for s.busy.Load() > 0 && ctx.Err() == nil {
		sleep(ctx, 2*time.Millisecond)
	}
}

// ErrBusy is returned by Submit when the daemon cannot take more work now.
var ErrBusy = errors.New("busy")

// Submit evaluates events and returns once each is committed: all of them
// are refused when one is invalid. Events of one conversation are
// evaluated in the order given.
func (s *Server) Submit(ctx context.Context, events []schemas.Event, by string) error {
	select {
	case <-s.closed:
		return fmt.Errorf("%w: shutting down", ErrBusy)
	default:
	}
	for i := range events {
		if err := engine.Validate(&events[i]); err != nil {
			return fmt.Errorf("%w: event %d (%s): %v", httpapi.ErrInvalid, i+1, events[i].ID, err)
		}
	}
	if n := s.pending.Load(); n >= int64(s.opts.MaxPending) {
		s.metrics.refused.Inc()
		return fmt.Errorf("%w: %d outbound messages wait for delivery", ErrBusy, n)
	}
	if err := s.submit(ctx, events, false); err != nil {
		return err
	}
	s.log.Debug("events committed", "count", len(events), "by", by)
	return nil
}

// submitInternal evaluates an event triage made itself (the bot's answer,
// an opt-out from a failed send). It waits for room rather than refusing,
// and is taken while shutting down: losing it would leave a customer
// without an answer and without an escalation.
func (s *Server) submitInternal(ctx context.Context, ev schemas.Event) error {
	if err := engine.Validate(&ev); err != nil {
		return err
	}
	return s.submit(ctx, []schemas.Event{ev}, true)
}

func (s *Server) submit(ctx context.Context, events []schemas.Event, wait bool) error {
	jobs := make([]job, len(events))
	for i, ev := range events {
		jobs[i] = job{ev: ev, done: make(chan error, 1)}
		ch := s.shards[s.shardOf(&ev)]
		s.busy.Add(1)
		if wait {
			select {
			case ch <- jobs[i]:
				continue
			case <-ctx.Done():
			}
		} else {
			select {
			case ch <- jobs[i]:
				continue
			default:
			}
		}
		s.busy.Add(-1)
		// Events already handed to a shard are evaluated anyway; a
		// redelivery finds them duplicates.
		s.metrics.refused.Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: evaluation queue full", ErrBusy)
	}
	var first error
	for _, j := range jobs {
		select {
		case err := <-j.done:
			if err != nil && first == nil {
				first = fmt.Errorf("event %s: %w", j.ev.ID, err)
			}
		case <-ctx.Done():
			// The caller gave up waiting; the events still finish.
			return ctx.Err()
		}
	}
	return first
}

// shardOf keeps every event of a conversation (or of an agent, for events
// without one) on one shard, so that they are evaluated in order.
func (s *Server) shardOf(ev *schemas.Event) int {
	key := ev.Conversation
	switch {
	case key != "":
	case ev.Agent != "":
		key = "agent:" + ev.Agent
	case ev.Contact != nil:
		key = "contact:" + ev.Contact.ID
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(s.shards)))
}

// shard evaluates the jobs of its conversations: the first waiting job
// and as many more as wait, up to MaxBatch, in one unit of work.
func (s *Server) shard(ctx context.Context, ch chan job) {
	eng := engine.NewStateless()
	batch := make([]job, 0, s.opts.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-ch:
			batch = append(batch[:0], j)
		}
	more:
		for len(batch) < s.opts.MaxBatch {
			select {
			case j := <-ch:
				batch = append(batch, j)
			default:
				break more
			}
		}
		s.runBatch(ctx, eng, batch)
	}
}

// runBatch evaluates a batch in one unit of work. When the unit fails as a
// whole, each event is tried in a unit of its own, so that one event the
// store cannot take does not hold up the others.
func (s *Server) runBatch(ctx context.Context, eng *engine.Engine, batch []job) {
	errs, err := s.unit(ctx, eng, batch)
	if err != nil && len(batch) > 1 {
		s.log.Warn("unit of work failed; evaluating its events one by one", "events", len(batch), "error", err)
		for _, j := range batch {
			one, err := s.unit(ctx, eng, []job{j})
			if err == nil {
				err = one[0]
			}
			j.done <- err
			s.busy.Add(-1)
		}
		return
	}
	for i, j := range batch {
		if err == nil {
			j.done <- errs[i]
		} else {
			j.done <- err
		}
		s.busy.Add(-1)
	}
}

// unit evaluates jobs in one unit of work: for each, the SLA deadlines of
// its conversation due by its time first (as replay does), then the
// event. It returns each job's own error (an event the engine refused)
// and the unit's (nothing of it was kept).
func (s *Server) unit(ctx context.Context, eng *engine.Engine, jobs []job) ([]error, error) {
	start := time.Now()
	set := s.opts.Holder.Set() // the unit finishes on the set it started with
	convs := make([]string, 0, len(jobs))
	events := make([]schemas.Event, 0, len(jobs))
	for _, j := range jobs {
		convs = append(convs, j.ev.Conversation)
		events = append(events, j.ev)
	}
	tx, err := s.store.Begin(ctx, convs, events)
	if err != nil {
		s.metrics.unitFailed()
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	errs := make([]error, len(jobs))
	var decided []schemas.Decision
	for i := range jobs {
		ev := jobs[i].ev
		if ev.Conversation != "" {
			fired, err := eng.FireDueIn(tx, set, ev.Conversation, ev.At)
			if err != nil {
				s.metrics.unitFailed()
				return nil, err
			}
			for _, d := range fired {
				if err := s.record(tx, d); err != nil {
					return nil, err
				}
			}
			decided = append(decided, fired...)
		}
		t := time.Now()
		d, err := eng.Eval(tx, set, &ev)
		if errors.Is(err, engine.ErrInvalidEvent) {
			errs[i] = fmt.Errorf("%w: %v", httpapi.ErrInvalid, err)
			continue
		}
		if err != nil {
			s.metrics.unitFailed()
			return nil, err
		}
		s.metrics.decision(time.Since(t))
		if err := s.record(tx, d); err != nil {
			return nil, err
		}
		decided = append(decided, d)
	}
	if err := tx.Commit(ctx); err != nil {
		s.metrics.unitFailed()
		return nil, fmt.Errorf("commit: %w", err)
	}
	s.metrics.unit(len(jobs), time.Since(start))
	s.committed(decided)
	return errs, nil
}

// committed counts what a committed unit decided and wakes whoever has
// new work: the dispatcher for outbound items, the timer for deadlines.
func (s *Server) committed(decided []schemas.Decision) {
	outbound := false
	for i := range decided {
		s.metrics.observe(&decided[i])
		outbound = outbound || len(decided[i].Outbound) > 0
	}
	if outbound {
		s.disp.kick()
	}
	// The memory store's timer sleeps until the next deadline exactly, so
	// a unit that planned an earlier one must wake it. A shared store's
	// timer polls (Options.Poll): waking it at every commit would cost a
	// query per commit, to find, nearly always, nothing due.
	if s.memory {
		s.pokeTimer()
	}
}

// record keeps a decision, the message its event carried and its
// outbound work in the unit. A duplicate changed nothing and is not kept.
func (s *Server) record(tx engine.Tx, d schemas.Decision) error {
	if d.Duplicate {
		return nil
	}
	r := engine.Record{Decision: d}
	switch d.Event.Type {
	case schemas.MessageReceived:
		r.Message = &schemas.Message{At: d.Event.At, From: "customer", Text: d.Event.Text, Event: d.Event.ID}
	case schemas.AgentReplied:
		r.Message = &schemas.Message{At: d.Event.At, From: "agent:" + d.Event.Agent, Text: d.Event.Text, Event: d.Event.ID}
	}
	now := s.now().UTC()
	for _, out := range d.Outbound {
		item := engine.OutboxItem{Outbound: out, Order: engine.OrderKey(out), At: d.Event.At, Due: now}
		if out.Kind == schemas.OutboundAskBot && d.Event.Type == schemas.MessageReceived {
			// The bot answers the message that asked it, even if the
			// customer wrote again before it was asked.
			item.AskedBy = d.Event.ID
		}
		r.Outbound = append(r.Outbound, item)
	}
	if err := tx.Record(r); err != nil {
		return fmt.Errorf("record %s: %w", d.Event.ID, err)
	}
	return nil
}

// pokeTimer tells the SLA timer that the next deadline may have moved.
func (s *Server) pokeTimer() {
	select {
	case s.timerCh <- struct{}{}:
	default:
	}
}

// timer fires SLA deadlines when the wall clock reaches them. With a
// shared store it also polls, for deadlines other replicas planned.
func (s *Server) timer(ctx context.Context) {
	eng := engine.NewStateless()
	for {
		if err := s.fireDue(ctx, eng); err != nil && ctx.Err() == nil {
			s.log.Error("firing SLA deadlines failed; trying again", "error", err)
		}
		wait := s.opts.Poll
		if s.memory {
			// Nobody else plans deadlines in this store: sleep until the
			// next one, or until a unit pokes.
			wait = time.Hour
		}
		if next, ok, err := s.store.NextDeadline(ctx); err == nil && ok {
			wait = min(wait, max(0, next.Sub(s.now())))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.timerCh:
			t.Stop()
		case <-t.C:
		}
	}
}

// fireDue fires every deadline due now, a few conversations per unit of
// work.
func (s *Server) fireDue(ctx context.Context, eng *engine.Engine) error {
	for ctx.Err() == nil {
		now := s.now().UTC()
		tx, convs, err := s.store.BeginDue(ctx, now, 16)
		if err != nil {
			return err
		}
		if tx == nil {
			return nil
		}
		set := s.opts.Holder.Set()
		var decided []schemas.Decision
		for _, c := range convs {
			fired, err := eng.FireDueIn(tx, set, c, now)
			if err == nil {
				for _, d := range fired {
					if err = s.record(tx, d); err != nil {
						break
					}
				}
			}
			if err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			decided = append(decided, fired...)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit fired deadlines: %w", err)
		}
		s.committed(decided)
	}
	return nil
}

// Statuses records WhatsApp delivery statuses on the messages they are
// about, once per status id and status, and acts on failures.
func (s *Server) Statuses(ctx context.Context, statuses []whatsapp.Status) error {
	updates := make([]engine.StatusUpdate, len(statuses))
	byKey := make(map[string]whatsapp.Status, len(statuses))
	for i, st := range statuses {
		updates[i] = engine.StatusUpdate{Conversation: st.Conversation, MessageID: st.ID, Status: st.Status, Key: st.Key()}
		byKey[st.Key()] = st
	}
	fresh, err := s.store.Statuses(ctx, updates)
	if err != nil {
		return err
	}
	for _, u := range fresh {
		st := byKey[u.Key]
		if st.Status != "failed" {
			continue
		}
		s.metrics.whatsappFailed.WithLabelValues(strconv.Itoa(st.ErrorCode)).Inc()
		s.log.Warn("whatsapp reports a message failed", "conversation", u.Conversation, "code", st.ErrorCode, "title", st.ErrorTitle, "details", st.ErrorDetails)
		if st.ErrorCode == whatsapp.CodeReEngagement && u.Conversation != "" {
			if err := s.closeWindow(ctx, u.Conversation); err != nil {
				return err
			}
		}
	}
	return nil
}

// closeWindow records that WhatsApp refused a message as outside the
// customer service window (see engine.Conv.CloseWindow).
func (s *Server) closeWindow(ctx context.Context, conv string) error {
	tx, err := s.store.Begin(ctx, []string{conv}, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	c, err := tx.Conversation(conv)
	if err != nil || c == nil {
		return err
	}
	c.CloseWindow()
	return tx.Commit(ctx)
}

// Conversation returns one conversation's view.
func (s *Server) Conversation(ctx context.Context, id string) (httpapi.ConversationView, bool, error) {
	r, ok, err := s.store.Conversation(ctx, id)
	if err != nil || !ok {
		return httpapi.ConversationView{}, ok, err
	}
	return httpapi.ConversationView{
		Conversation: r.Conversation,
		Contact:      r.Contact,
		Messages:     r.Messages,
		Notes:        r.Notes,
		Decisions:    r.Decisions,
		Deliveries:   r.Deliveries,
	}, true, nil
}

// Conversations lists conversations matching f.
func (s *Server) Conversations(ctx context.Context, f httpapi.Filter) ([]httpapi.ConversationSummary, error) {
	list, err := s.store.Conversations(ctx, engine.ConversationFilter{Status: f.Status, Team: f.Team, Assignee: f.Assignee, Teams: f.Teams, Agent: f.Agent,
		After: f.After, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.ConversationSummary, len(list))
	for i, c := range list {
		out[i] = httpapi.ConversationSummary{Conversation: c}
	}
	return out, nil
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

// Reloaded is the reload.Holder's OnReload hook: it updates the metrics
// and, after a successful reload, assigns waiting conversations to agents
// the new set made eligible.
func (s *Server) Reloaded(st reload.Status) {
	s.metrics.reloaded(st)
	if !st.OK || s.ctx == nil {
		return
	}
	go func() {
		if err := s.drainQueues(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("assigning waiting conversations after the reload failed", "error", err)
		}
	}()
}

func (s *Server) drainQueues(ctx context.Context) error {
	tx, err := s.store.Begin(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	assigned, err := engine.NewStateless().Drain(tx, s.opts.Holder.Set(), s.now().UTC())
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, a := range assigned {
		s.log.Info("waiting conversation assigned after the reload", "conversation", a.Conversation, "agent", a.Agent, "team", a.Team)
	}
	return nil
}

// Ready reports whether the server takes traffic.
func (s *Server) Ready(context.Context) error {
	select {
	case <-s.closed:
		return errors.New("shutting down")
	default:
	}
	for _, ch := range s.shards {
		if len(ch) == cap(ch) {
			return errors.New("evaluation queue full")
		}
	}
	if n := s.pending.Load(); n >= int64(s.opts.MaxPending) {
		return fmt.Errorf("%d outbound messages wait for delivery", n)
	}
	return nil
}

// DeadDeliveries lists the outbound items given up, newest first.
func (s *Server) DeadDeliveries(ctx context.Context, limit int) ([]httpapi.DeadDelivery, error) {
	items, err := s.store.DeadItems(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.DeadDelivery, len(items))
	for i, it := range items {
		out[i] = httpapi.DeadDelivery{Delivery: it.Delivery(), Conversation: it.Conversation, Contact: it.Contact, Params: it.Params}
	}
	return out, nil
}

var _ httpapi.Backend = (*Server)(nil)
