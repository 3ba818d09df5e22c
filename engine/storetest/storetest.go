// Package storetest is the test suite every engine.Store passes: the
// in-memory store and the PostgreSQL one run the same tests, so the
// daemon may rely on exactly what they check and nothing more.
//
// Events go through the engine wherever the store's behaviour depends on
// what the engine keeps (assignment, queues, SLA clocks), so a store is
// tested on the records the daemon really writes; the rest drives the
// State and the outbox directly, to pin exact values.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// Run runs every test of the suite against stores made by open; each call
// of open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) engine.Store) {
	su := suite{open: open}
	t.Run("seen", su.seen)
	t.Run("state", su.state)
	t.Run("isolation", su.isolation)
	t.Run("locking", su.locking)
	t.Run("shared", su.shared)
	t.Run("queued", su.queued)
	t.Run("sla", su.sla)
	t.Run("outbox", su.outbox)
	t.Run("statuses", su.statuses)
	t.Run("statuses before their message", su.statusesEarly)
	t.Run("reads", su.reads)
}

// suite holds what every test of the suite needs: a way to open a store.
type suite struct {
	open func(t *testing.T) engine.Store
}

// store opens a fresh store for one test and closes it when the test ends,
// after the test's units of work are rolled back.
func (su suite) store(t *testing.T) engine.Store {
	t.Helper()
	s := su.open(t)
	t.Cleanup(s.Close)
	return s
}

// t0 is a Monday morning; every event of the suite happens shortly after.
var t0 = time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	// settle is how long a call that must block is watched before the test
	// takes it as blocked.
	settle = 50 * time.Millisecond
	// guard is how long a call that must return may take before the test
	// gives up on it: generous, so that a slow machine or database never
	// fails the suite, yet a deadlock does not hang it.
	guard = 10 * time.Second
)

// rulesYAML hands a conversation to the support team on the customer's
// first message and reacts to its SLA deadlines: every part of the
// engine's state a store keeps (assignment, queues, notes, SLA clocks,
// outbound work) is reached by it. A warning comes 3 minutes after the
// escalation, the breach 5 minutes after it.
const rulesYAML = `version: 1
teams:
  support:
    strategy: round_robin
    members:
%s
sla:
  - name: standard
    first_response: 5m
    warn_before: 2m
rules:
  - name: handoff
    on: [message.received]
    when: conversation.handler == "bot"
    actions:
      - escalate: {reason: asked}
      - assign: {team: support}
      - note: {text: "handed off"}
      - reply: {text: "Someone from our team will answer soon."}
  - name: warned
    on: [sla.warning]
    actions:
      - notify: {slack: "#leads", text: "{{ conversation.id }} is due soon"}
  - name: breached
    on: [sla.breached]
    actions:
      - tag: {add: [sla_breached]}
`

const (
	handoffReply = "Someone from our team will answer soon."
	warnAfter    = 3 * time.Minute
	breachAfter  = 5 * time.Minute
)

// ruleSet compiles rulesYAML for a team of agents a1, a2, ... each taking
// at most capacity open conversations.
func ruleSet(t *testing.T, agents, capacity int) *rules.Set {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= agents; i++ {
		fmt.Fprintf(&b, "      - {id: a%d, capacity: %d}\n", i, capacity)
	}
	set, err := rules.Compile([]rules.File{{Path: "r.yaml", Data: fmt.Appendf(nil, rulesYAML, b.String())}}, rules.Options{})
	if err != nil {
		t.Fatalf("compile rules: %v", err)
	}
	return set
}

func message(id, conv string, at time.Time) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.MessageReceived, At: at, Conversation: conv, Text: "hello from " + conv}
}

func agentReply(id, conv, agent string, at time.Time) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.AgentReplied, At: at, Conversation: conv, Agent: agent, Text: "hi, how can I help?"}
}

func resolve(id, conv string, at time.Time) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.ConversationResolved, At: at, Conversation: conv}
}

func agentStatus(id, agent, status string, at time.Time) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.AgentStatus, At: at, Agent: agent, Status: status}
}

// recordOf is what the daemon keeps of a decision: the decision, the
// message its event carried, and its outbound work due at once.
func recordOf(d schemas.Decision) engine.Record {
	r := engine.Record{Decision: d}
	ev := d.Event
	switch ev.Type {
	case schemas.MessageReceived:
		r.Message = &schemas.Message{At: ev.At, From: "customer", Text: ev.Text, Event: ev.ID}
	case schemas.AgentReplied:
		r.Message = &schemas.Message{At: ev.At, From: "agent:" + ev.Agent, Text: ev.Text, Event: ev.ID}
	}
	for _, o := range d.Outbound {
		r.Outbound = append(r.Outbound, engine.OutboxItem{Outbound: o, Order: engine.OrderKey(o), At: ev.At, Due: ev.At})
	}
	return r
}

// evalIn evaluates ev in tx and records its decision, as a worker does.
func evalIn(eng *engine.Engine, tx engine.Tx, set *rules.Set, ev schemas.Event) (schemas.Decision, error) {
	d, err := eng.Eval(tx, set, &ev)
	if err != nil {
		return d, fmt.Errorf("evaluate %s: %w", ev.ID, err)
	}
	if d.Duplicate {
		return d, nil
	}
	if err := tx.Record(recordOf(d)); err != nil {
		return d, fmt.Errorf("record %s: %w", ev.ID, err)
	}
	return d, nil
}

// handle is one worker step: a unit of work holding the event's
// conversation, the evaluation, the commit. It may run on any goroutine.
func handle(s engine.Store, eng *engine.Engine, set *rules.Set, ev schemas.Event) (schemas.Decision, error) {
	ctx := context.Background()
	var convs []string
	if ev.Conversation != "" {
		convs = []string{ev.Conversation}
	}
	tx, err := s.Begin(ctx, convs, []schemas.Event{ev})
	if err != nil {
		return schemas.Decision{}, fmt.Errorf("begin %s: %w", ev.ID, err)
	}
	d, err := evalIn(eng, tx, set, ev)
	if err != nil {
		_ = tx.Rollback(ctx)
		return d, err
	}
	if err := tx.Commit(ctx); err != nil {
		return d, fmt.Errorf("commit %s: %w", ev.ID, err)
	}
	return d, nil
}

// process handles ev, failing the test rather than hanging when the store
// makes it wait for a unit the test holds.
func process(t *testing.T, s engine.Store, set *rules.Set, ev schemas.Event) schemas.Decision {
	t.Helper()
	type result struct {
		d   schemas.Decision
		err error
	}
	ch := make(chan result, 1)
	go func() {
		d, err := handle(s, engine.NewStateless(), set, ev)
		ch <- result{d, err}
	}()
	r := await(t, ch, "handling "+ev.ID)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.d
}

// fireDue is one timer step of a worker: a unit of work over the
// conversations due at now, their deadlines fired, the commit. It reports
// the conversations it held; none means nothing was due and free.
func fireDue(s engine.Store, eng *engine.Engine, set *rules.Set, now time.Time, limit int) ([]string, []schemas.Decision, error) {
	ctx := context.Background()
	tx, ids, err := s.BeginDue(ctx, now, limit)
	if err != nil || tx == nil {
		if err == nil && len(ids) > 0 {
			err = fmt.Errorf("BeginDue returned ids %v without a unit of work", ids)
		}
		return nil, nil, err
	}
	var out []schemas.Decision
	for _, id := range ids {
		ds, err := eng.FireDueIn(tx, set, id, now)
		if err == nil {
			for _, d := range ds {
				if err = tx.Record(recordOf(d)); err != nil {
					break
				}
			}
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return nil, nil, fmt.Errorf("fire %s: %w", id, err)
		}
		out = append(out, ds...)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("commit due: %w", err)
	}
	return ids, out, nil
}

// begin starts a unit of work; it is rolled back when the test ends, so a
// failing test releases what it held (Rollback after Commit does nothing).
func begin(t *testing.T, s engine.Store, convs []string, events ...schemas.Event) engine.Tx {
	t.Helper()
	tx, err := s.Begin(context.Background(), convs, events)
	if err != nil {
		t.Fatalf("begin %v: %v", convs, err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func commit(t *testing.T, tx engine.Tx) {
	t.Helper()
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func rollback(t *testing.T, tx engine.Tx) {
	t.Helper()
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatalf("rollback: %v", err)
	}
}

func eval(t *testing.T, tx engine.Tx, set *rules.Set, ev schemas.Event) schemas.Decision {
	t.Helper()
	d, err := evalIn(engine.NewStateless(), tx, set, ev)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type began struct {
	tx  engine.Tx
	err error
}

// beginAsync starts a unit of work on another goroutine, for a test that
// shows it waiting.
func beginAsync(s engine.Store, convs ...string) <-chan began {
	ch := make(chan began, 1)
	go func() {
		tx, err := s.Begin(context.Background(), convs, nil)
		ch <- began{tx, err}
	}()
	return ch
}

// started takes the unit beginAsync started, once it has.
func started(t *testing.T, ch <-chan began, what string) engine.Tx {
	t.Helper()
	b := await(t, ch, what)
	if b.err != nil {
		t.Fatalf("%s: %v", what, b.err)
	}
	t.Cleanup(func() { _ = b.tx.Rollback(context.Background()) })
	return b.tx
}

// await returns what ch delivers, failing the test when nothing comes
// within guard.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: nothing after %v", what, guard)
		panic("unreachable")
	}
}

// waits checks that ch delivers nothing for settle: what sends on it is
// blocked.
func waits[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s did not wait", what)
	case <-time.After(settle):
	}
}

// within runs f on another goroutine and fails the test when it has not
// returned within guard: for calls that must not block.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	await(t, done, what)
}

// wait waits for wg, failing the test when it takes longer than guard:
// goroutines that never finish are deadlocked.
func wait(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	await(t, done, what+" (deadlock?)")
}

func wantSeen(t *testing.T, tx engine.Tx, id string, want bool) {
	t.Helper()
	got, err := tx.Seen(id)
	if err != nil {
		t.Fatalf("Seen(%s): %v", id, err)
	}
	if got != want {
		t.Fatalf("Seen(%s) = %v, want %v", id, got, want)
	}
}

func stateConv(t *testing.T, tx engine.Tx, id string) *engine.Conv {
	t.Helper()
	c, err := tx.Conversation(id)
	if err != nil {
		t.Fatalf("Tx.Conversation(%s): %v", id, err)
	}
	return c
}

func record(t *testing.T, s engine.Store, id string) engine.ConversationRecord {
	t.Helper()
	r, ok, err := s.Conversation(context.Background(), id)
	if err != nil {
		t.Fatalf("Conversation(%s): %v", id, err)
	}
	if !ok {
		t.Fatalf("Conversation(%s): not found", id)
	}
	return r
}

func noRecord(t *testing.T, s engine.Store, id string) {
	t.Helper()
	r, ok, err := s.Conversation(context.Background(), id)
	if err != nil {
		t.Fatalf("Conversation(%s): %v", id, err)
	}
	if ok {
		t.Fatalf("Conversation(%s) = %+v, want none", id, r.Conversation)
	}
}

func list(t *testing.T, s engine.Store, f engine.ConversationFilter) []schemas.Conversation {
	t.Helper()
	cs, err := s.Conversations(context.Background(), f)
	if err != nil {
		t.Fatalf("Conversations(%+v): %v", f, err)
	}
	return cs
}

func ids(cs []schemas.Conversation) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func messages(t *testing.T, s engine.Store, conv string) []schemas.Message {
	t.Helper()
	ms, err := s.Messages(context.Background(), conv)
	if err != nil {
		t.Fatalf("Messages(%s): %v", conv, err)
	}
	return ms
}

func contactOf(t *testing.T, s engine.Store, id string) (schemas.Contact, bool) {
	t.Helper()
	c, ok, err := s.Contact(context.Background(), id)
	if err != nil {
		t.Fatalf("Contact(%s): %v", id, err)
	}
	return c, ok
}

// queueLengths drops empty queues: a store may list a team whose queue is
// empty or leave it out, and both say nobody waits.
func queueLengths(t *testing.T, s engine.Store) map[string]int {
	t.Helper()
	m, err := s.QueueLengths(context.Background())
	if err != nil {
		t.Fatalf("QueueLengths: %v", err)
	}
	out := map[string]int{}
	for team, n := range m {
		if n != 0 {
			out[team] = n
		}
	}
	return out
}

func wantQueues(t *testing.T, s engine.Store, want map[string]int) {
	t.Helper()
	if got := queueLengths(t, s); !mapsEqual(got, want) {
		t.Fatalf("QueueLengths = %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sharedState reads the committed shared state through a unit of work of
// its own, the only way a store shows it.
func sharedState(t *testing.T, s engine.Store) ([]engine.AgentState, []engine.TeamState) {
	t.Helper()
	tx := begin(t, s, nil)
	var sh *engine.Shared
	within(t, "Shared", func() {
		var err error
		if sh, err = tx.Shared(); err != nil {
			t.Errorf("Shared: %v", err)
		}
	})
	if sh == nil {
		t.FailNow()
	}
	agents, teams := sh.Agents(), sh.Teams()
	rollback(t, tx)
	return agents, teams
}

// openCounts maps each agent to the Open count Shared keeps.
func openCounts(t *testing.T, s engine.Store) map[string]int {
	t.Helper()
	agents, _ := sharedState(t, s)
	out := map[string]int{}
	for _, a := range agents {
		out[a.ID] = a.Open
	}
	return out
}

// queue lists the conversations waiting in a team's queue, in order.
func queue(t *testing.T, s engine.Store, team string) []string {
	t.Helper()
	_, teams := sharedState(t, s)
	out := []string{}
	for _, ts := range teams {
		if ts.Name == team {
			for _, q := range ts.Queue {
				out = append(out, q.Conversation)
			}
		}
	}
	return out
}

// canon renders v as JSON with every time in UTC, so that values read back
// from a store compare equal to what was written whatever zone its driver
// returns times in.
func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	b, err = json.Marshal(utcTimes(x))
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	return string(b)
}

func utcTimes(x any) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			x[k] = utcTimes(v)
		}
	case []any:
		for i, v := range x {
			x[i] = utcTimes(v)
		}
	case string:
		if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
	}
	return x
}

func wantCanon(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := canon(t, got), canon(t, want); g != w {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

// wantEach compares two lists element by element, so that a nil list and
// an empty one are the same.
func wantEach[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d, want %d:\n got  %s\n want %s", what, len(got), len(want), canon(t, got), canon(t, want))
	}
	for i := range got {
		wantCanon(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func types(ds []schemas.Decision) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Event.Type)
	}
	return out
}

// seen tests the recording of event ids that finds duplicates.
func (su suite) seen(t *testing.T) {
	t.Run("an id given to Begin is new the first time and seen by a later unit", func(t *testing.T) {
		s := su.store(t)
		tx := begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, tx, "e1", false)
		commit(t, tx)
		tx = begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, tx, "e1", true)
		rollback(t, tx)
	})
	t.Run("Begin records the ids even when the unit never asks about them", func(t *testing.T) {
		s := su.store(t)
		commit(t, begin(t, s, []string{"c1"}, message("e1", "c1", t0)))
		tx := begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, tx, "e1", true)
		rollback(t, tx)
	})
	t.Run("the same id twice in one Begin is new once", func(t *testing.T) {
		s := su.store(t)
		ev := message("e1", "c1", t0)
		tx := begin(t, s, []string{"c1"}, ev, ev)
		wantSeen(t, tx, "e1", false)
		wantSeen(t, tx, "e1", true)
		commit(t, tx)
		tx = begin(t, s, []string{"c1"}, ev)
		wantSeen(t, tx, "e1", true)
		rollback(t, tx)
	})
	t.Run("the ids of a rolled-back unit are new again", func(t *testing.T) {
		s := su.store(t)
		tx := begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, tx, "e1", false)
		wantSeen(t, tx, "sla:c1", false)
		rollback(t, tx)
		tx = begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, tx, "e1", false)
		wantSeen(t, tx, "sla:c1", false)
		rollback(t, tx)
	})
	t.Run("Seen records an id not given to Begin", func(t *testing.T) {
		// The engine asks about the ids of the SLA events it makes.
		s := su.store(t)
		tx := begin(t, s, []string{"c1"})
		wantSeen(t, tx, "sla:c1", false)
		wantSeen(t, tx, "sla:c1", true)
		commit(t, tx)
		tx = begin(t, s, []string{"c2"})
		wantSeen(t, tx, "sla:c1", true)
		rollback(t, tx)
		tx = begin(t, s, []string{"c3"}, schemas.Event{ID: "sla:c1"})
		wantSeen(t, tx, "sla:c1", true)
		rollback(t, tx)
	})
	t.Run("a unit of another conversation carrying a committed id sees it", func(t *testing.T) {
		s := su.store(t)
		a := begin(t, s, []string{"c1"}, message("e1", "c1", t0))
		wantSeen(t, a, "e1", false)
		// A store may make the second unit wait for the first to end.
		type answer struct {
			seen bool
			err  error
		}
		ch := make(chan answer, 1)
		go func() {
			tx, err := s.Begin(context.Background(), []string{"c2"}, []schemas.Event{message("e1", "c2", t0)})
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			seen, err := tx.Seen("e1")
			ch <- answer{seen, err}
		}()
		commit(t, a)
		got := await(t, ch, "the second unit")
		if got.err != nil {
			t.Fatal(got.err)
		}
		if !got.seen {
			t.Fatal("a unit of another conversation saw e1 as new after the first unit committed it")
		}
	})
}

// state tests that a unit of work keeps the changes made to what it
// hands out.
func (su suite) state(t *testing.T) {
	t.Run("changes through what the unit hands out are kept", func(t *testing.T) {
		s := su.store(t)
		tx := begin(t, s, []string{"c1"})
		if c := stateConv(t, tx, "c1"); c != nil {
			t.Fatalf("Tx.Conversation of a new store = %+v, want nil", c.Conversation)
		}
		c := engine.NewConv("c1", t0)
		if err := tx.AddConversation(c); err != nil {
			t.Fatal(err)
		}
		c.Priority, c.Tags, c.Contact = schemas.PriorityHigh, append(c.Tags, "vip"), "p1"
		again := stateConv(t, tx, "c1")
		if again == nil || again.Priority != schemas.PriorityHigh {
			t.Fatalf("Tx.Conversation after AddConversation and a change = %+v, want the changed conversation", again)
		}
		again.Notes = append(again.Notes, schemas.Note{At: t0, Text: "called back", Author: "a1"})
		p, err := tx.Contact("p1")
		if err != nil {
			t.Fatal(err)
		}
		wantCanon(t, "a new contact", *p, schemas.Contact{ID: "p1"})
		p.Name = "Asha"
		if p, err = tx.Contact("p1"); err != nil || p.Name != "Asha" {
			t.Fatalf("Tx.Contact after a change = %+v, %v; want the changed contact", p, err)
		}
		commit(t, tx)

		want := engine.NewConv("c1", t0).Conversation
		want.Priority, want.Tags, want.Contact = schemas.PriorityHigh, []string{"vip"}, "p1"
		r := record(t, s, "c1")
		wantCanon(t, "conversation", r.Conversation, want)
		wantEach(t, "notes", r.Notes, []schemas.Note{{At: t0, Text: "called back", Author: "a1"}})
		wantCanon(t, "contact", r.Contact, schemas.Contact{ID: "p1", Name: "Asha"})

		tx = begin(t, s, []string{"c1"})
		c = stateConv(t, tx, "c1")
		if c == nil {
			t.Fatal("Tx.Conversation of a committed conversation = nil")
		}
		wantCanon(t, "conversation in a later unit", c.Conversation, want)
		wantEach(t, "notes in a later unit", c.Notes, []schemas.Note{{At: t0, Text: "called back", Author: "a1"}})
		c.Priority = schemas.PriorityUrgent
		if again := stateConv(t, tx, "c1"); again.Priority != schemas.PriorityUrgent {
			t.Fatalf("Tx.Conversation after a change = priority %s, want the changed conversation", again.Priority)
		}
		commit(t, tx)
		if got := record(t, s, "c1").Conversation.Priority; got != schemas.PriorityUrgent {
			t.Fatalf("priority after the second unit = %s, want urgent", got)
		}
	})
	t.Run("Rollback after Commit does nothing", func(t *testing.T) {
		s := su.store(t)
		a := begin(t, s, []string{"c1"})
		if err := a.AddConversation(engine.NewConv("c1", t0)); err != nil {
			t.Fatal(err)
		}
		commit(t, a)
		b := begin(t, s, []string{"c1"})
		rollback(t, a)
		record(t, s, "c1")
		// A stray Rollback must not release what a later unit holds.
		ch := beginAsync(s, "c1")
		waits(t, ch, "Begin on a conversation held by an open unit")
		commit(t, b)
		rollback(t, started(t, ch, "Begin once the holder committed"))
	})
}

// isolation tests that nothing of a unit is seen before its Commit, and
// nothing after its Rollback.
func (su suite) isolation(t *testing.T) {
	t.Run("an open unit's changes are invisible until it commits", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 1)
		process(t, s, set, message("m1", "c1", t0)) // a1 takes c1 and is full

		m2 := message("m2", "c2", at(time.Minute))
		m2.Contact = &schemas.Contact{ID: "p2", Name: "Bo"}
		tx := begin(t, s, []string{"c1", "c2"}, m2)
		eval(t, tx, set, agentReply("r1", "c1", "a1", at(30*time.Second)))
		if d := eval(t, tx, set, m2); d.Conversation.Assignee != "" {
			t.Fatalf("c2 went to %q; the only agent is full, so it should wait", d.Conversation.Assignee)
		}

		c1 := record(t, s, "c1")
		if !c1.Conversation.FirstResponseAt.IsZero() || len(c1.Decisions) != 1 || len(c1.Messages) != 1 {
			t.Fatalf("c1 before commit: first response %v, %d decisions, %d messages; want the committed state (zero, 1, 1)",
				c1.Conversation.FirstResponseAt, len(c1.Decisions), len(c1.Messages))
		}
		noRecord(t, s, "c2")
		wantStrings(t, "Conversations before commit", ids(list(t, s, engine.ConversationFilter{})), []string{"c1"})
		if p, ok := contactOf(t, s, "p2"); ok {
			t.Fatalf("Contact(p2) before commit = %+v, want none", p)
		}
		if ms := messages(t, s, "c2"); len(ms) != 0 {
			t.Fatalf("Messages(c2) before commit = %+v, want none", ms)
		}
		wantQueues(t, s, map[string]int{})
		wantOutbound(t, s, engine.OutboundStats{Pending: 1, NextDue: t0})
		wantNextDeadline(t, s, at(warnAfter), true)

		commit(t, tx)
		c1 = record(t, s, "c1")
		wantTime(t, "c1 first response", c1.Conversation.FirstResponseAt, at(30*time.Second))
		wantStrings(t, "c1 decisions", types(c1.Decisions), []string{schemas.MessageReceived, schemas.AgentReplied})
		c2 := record(t, s, "c2")
		if c2.Conversation.Team != "support" || c2.Conversation.Assignee != "" || !c2.Conversation.Escalated {
			t.Fatalf("c2 after commit = %+v, want escalated, waiting for support", c2.Conversation)
		}
		wantStrings(t, "Conversations after commit", ids(list(t, s, engine.ConversationFilter{})), []string{"c1", "c2"})
		if p, _ := contactOf(t, s, "p2"); p.Name != "Bo" {
			t.Fatalf("Contact(p2) after commit = %+v, want Bo", p)
		}
		if ms := messages(t, s, "c2"); len(ms) != 1 || ms[0].Event != "m2" {
			t.Fatalf("Messages(c2) after commit = %+v, want m2's", ms)
		}
		wantQueues(t, s, map[string]int{"support": 1})
		wantOutbound(t, s, engine.OutboundStats{Pending: 2, NextDue: t0})
		// c1's clock stopped at the reply; c2's runs from m2.
		wantNextDeadline(t, s, at(time.Minute+warnAfter), true)
	})
	t.Run("a rolled-back unit leaves nothing behind", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		agentsBefore, teamsBefore := sharedState(t, s)
		wantCanon(t, "agents", agentsBefore, []engine.AgentState{{ID: "a1", Status: schemas.AgentOnline, Open: 1}})

		m2 := message("m2", "c2", at(time.Minute))
		m2.Contact = &schemas.Contact{ID: "p2", Name: "Bo"}
		r1 := resolve("r1", "c1", at(time.Minute))
		tx := begin(t, s, []string{"c1", "c2"}, r1, m2)
		eval(t, tx, set, r1)
		eval(t, tx, set, m2)
		sh, err := tx.Shared()
		if err != nil {
			t.Fatal(err)
		}
		sh.PutAgent(engine.AgentState{ID: "a9", Status: schemas.AgentAway})
		wantSeen(t, tx, "sla:x", false)
		rollback(t, tx)

		c1 := record(t, s, "c1")
		if c1.Conversation.Status != schemas.StatusOpen || c1.Conversation.Assignee != "a1" ||
			len(c1.Decisions) != 1 || len(c1.Messages) != 1 || len(c1.Deliveries) != 1 {
			t.Fatalf("c1 after rollback: %+v, %d decisions, %d messages, %d deliveries; want it as committed (open, a1, 1, 1, 1)",
				c1.Conversation, len(c1.Decisions), len(c1.Messages), len(c1.Deliveries))
		}
		noRecord(t, s, "c2")
		if p, ok := contactOf(t, s, "p2"); ok {
			t.Fatalf("Contact(p2) after rollback = %+v, want none", p)
		}
		if ms := messages(t, s, "c2"); len(ms) != 0 {
			t.Fatalf("Messages(c2) after rollback = %+v, want none", ms)
		}
		wantOutbound(t, s, engine.OutboundStats{Pending: 1, NextDue: t0})
		wantNextDeadline(t, s, at(warnAfter), true)
		agents, teams := sharedState(t, s)
		wantCanon(t, "agents after rollback", agents, agentsBefore)
		wantCanon(t, "teams after rollback", teams, teamsBefore)
		tx = begin(t, s, []string{"c1", "c2"}, r1, m2)
		wantSeen(t, tx, "r1", false)
		wantSeen(t, tx, "m2", false)
		wantSeen(t, tx, "sla:x", false)
		rollback(t, tx)
	})
	t.Run("a unit does not undo a contact change committed while it was open, nor loses its own", func(t *testing.T) {
		// An opt-out may come with only the contact, in a unit that holds
		// no conversation, while the customer's conversation is being
		// evaluated: losing it would message someone who said stop.
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		m1 := message("m1", "c1", t0)
		m1.Contact = &schemas.Contact{ID: "p1", Name: "Asha"}
		process(t, s, set, m1)

		// The open unit changes another field of the contact: both
		// changes must stay.
		m2 := message("m2", "c1", at(time.Minute))
		m2.Contact = &schemas.Contact{ID: "p1", Language: "hi"}
		a := begin(t, s, []string{"c1"}, m2)
		eval(t, a, set, m2)
		done := make(chan error, 1)
		go func() {
			_, err := handle(s, engine.NewStateless(), set, schemas.Event{
				ID: "o1", Type: schemas.ContactOptedOut, At: at(30 * time.Second), Contact: &schemas.Contact{ID: "p1"},
			})
			done <- err
		}()
		// A store may make the opt-out wait for the open unit; a store that
		// does not must not let the open unit overwrite it.
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			done <- nil
		case <-time.After(settle):
		}
		commit(t, a)
		if err := await(t, done, "the opt-out"); err != nil {
			t.Fatal(err)
		}
		p, _ := contactOf(t, s, "p1")
		wantCanon(t, "contact", p, schemas.Contact{ID: "p1", Name: "Asha", Language: "hi", OptedOut: true})
	})
}

// locking tests that units of one conversation run one at a time.
func (su suite) locking(t *testing.T) {
	t.Run("Begin on a held conversation waits for the commit and sees its changes", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		a := begin(t, s, []string{"c1"}, message("m1", "c1", t0))
		eval(t, a, set, message("m1", "c1", t0))
		ch := beginAsync(s, "c1")
		waits(t, ch, "Begin on a conversation held by an open unit")
		commit(t, a)
		b := started(t, ch, "Begin once the holder committed")
		c := stateConv(t, b, "c1")
		if c == nil || c.Messages != 1 || c.Assignee != "a1" || !c.Escalated {
			t.Fatalf("the waiting unit sees %+v, want the committed conversation (1 message, a1, escalated)", c)
		}
		rollback(t, b)
	})
	t.Run("Begin on a held conversation waits for the rollback and sees nothing of it", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		a := begin(t, s, []string{"c1"}, message("m1", "c1", t0))
		eval(t, a, set, message("m1", "c1", t0))
		ch := beginAsync(s, "c1")
		waits(t, ch, "Begin on a conversation held by an open unit")
		rollback(t, a)
		b := started(t, ch, "Begin once the holder rolled back")
		if c := stateConv(t, b, "c1"); c != nil {
			t.Fatalf("the waiting unit sees %+v, want no conversation", c.Conversation)
		}
		rollback(t, b)
	})
	t.Run("Begin on another conversation does not wait", func(t *testing.T) {
		s := su.store(t)
		a := begin(t, s, []string{"c1", "c2"})
		b := started(t, beginAsync(s, "c3"), "Begin on a conversation nobody holds")
		commit(t, b)
		commit(t, a)
	})
	t.Run("Begin with an ended context fails and holds nothing", func(t *testing.T) {
		s := su.store(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var err error
		within(t, "Begin with an ended context", func() {
			var tx engine.Tx
			if tx, err = s.Begin(ctx, []string{"c1"}, []schemas.Event{message("e1", "c1", t0)}); err == nil {
				_ = tx.Rollback(context.Background())
			}
		})
		if err == nil {
			t.Fatal("Begin with an ended context succeeded")
		}
		tx := started(t, beginAsync(s, "c1"), "Begin after the failed one")
		wantSeen(t, tx, "e1", false)
		rollback(t, tx)
	})
	t.Run("a conversation named twice is held once", func(t *testing.T) {
		s := su.store(t)
		a := started(t, beginAsync(s, "c1", "c2", "c1"), "Begin naming c1 twice")
		ch := beginAsync(s, "c1")
		waits(t, ch, "Begin on a conversation held by an open unit")
		commit(t, a)
		commit(t, started(t, ch, "Begin once the holder committed"))
	})
	t.Run("units naming conversations in different orders never deadlock", func(t *testing.T) {
		s := su.store(t)
		orders := [][]string{{"x", "y", "z"}, {"z", "y", "x"}, {"y", "x"}, {"z", "x"}}
		const rounds = 25
		var wg sync.WaitGroup
		for _, convs := range orders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for range rounds {
					tx, err := s.Begin(ctx, convs, nil)
					if err != nil {
						t.Errorf("begin %v: %v", convs, err)
						return
					}
					// A read-modify-write per conversation: a lost update
					// shows units of one conversation overlapping.
					for _, id := range convs {
						c, err := tx.Conversation(id)
						if err == nil && c == nil {
							c = engine.NewConv(id, t0)
							err = tx.AddConversation(c)
						}
						if err != nil {
							_ = tx.Rollback(ctx)
							t.Errorf("conversation %s: %v", id, err)
							return
						}
						c.Messages++
					}
					if err := tx.Commit(ctx); err != nil {
						t.Errorf("commit %v: %v", convs, err)
						return
					}
				}
			}()
		}
		wait(t, &wg, "units in different orders")
		if t.Failed() {
			return
		}
		for id, want := range map[string]int{"x": 4 * rounds, "y": 3 * rounds, "z": 3 * rounds} {
			if got := record(t, s, id).Conversation.Messages; got != want {
				t.Errorf("%s counted %d units, want %d", id, got, want)
			}
		}
	})
}

// shared tests that the state every conversation shares is taken by one
// unit at a time and written back at commit.
func (su suite) shared(t *testing.T) {
	t.Run("Shared waits for the unit holding it and then sees its changes", func(t *testing.T) {
		s := su.store(t)
		a := begin(t, s, []string{"c1"})
		sh, err := a.Shared()
		if err != nil {
			t.Fatal(err)
		}
		sh.PutAgent(engine.AgentState{ID: "a9", Status: schemas.AgentAway, Open: 2})
		b := begin(t, s, []string{"c2"})
		type took struct {
			sh  *engine.Shared
			err error
		}
		ch := make(chan took, 1)
		go func() {
			sh, err := b.Shared()
			ch <- took{sh, err}
		}()
		waits(t, ch, "Shared while another unit holds it")
		commit(t, a)
		got := await(t, ch, "Shared once the holder committed")
		if got.err != nil {
			t.Fatal(got.err)
		}
		wantCanon(t, "agents", got.sh.Agents(), []engine.AgentState{{ID: "a9", Status: schemas.AgentAway, Open: 2}})
		rollback(t, b)
	})
	t.Run("PutAgent and PutTeam are kept at commit and dropped at rollback", func(t *testing.T) {
		s := su.store(t)
		agents := []engine.AgentState{
			{ID: "a1", Status: schemas.AgentOnline, Open: 1},
			{ID: "a2", Status: schemas.AgentOffline},
		}
		teams := []engine.TeamState{
			{Name: "billing"},
			{Name: "support", LastGiven: "a1", Queue: []engine.QueueEntry{
				{Conversation: "c7", Since: t0, Request: actions.AssignRequest{Team: "support", Skills: []string{"refunds"}, Language: "en"}},
				{Conversation: "c8", Since: at(time.Second), Request: actions.AssignRequest{Team: "support"}},
				// The same request as c7's: read back as its own.
				{Conversation: "c9", Since: at(2 * time.Second), Request: actions.AssignRequest{Team: "support", Skills: []string{"refunds"}, Language: "en"}},
			}},
		}
		tx := begin(t, s, nil)
		sh, err := tx.Shared()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range agents {
			sh.PutAgent(a)
		}
		for _, ts := range teams {
			sh.PutTeam(ts)
		}
		commit(t, tx)
		gotAgents, gotTeams := sharedState(t, s)
		wantCanon(t, "agents", gotAgents, agents)
		wantEach(t, "teams", gotTeams, teams)
		wantQueues(t, s, map[string]int{"support": 3})
		for _, ts := range gotTeams {
			if ts.Name == "support" && len(ts.Queue) == 3 {
				ts.Queue[0].Request.Skills[0] = "changed"
				if got := ts.Queue[2].Request.Skills; got[0] != "refunds" {
					t.Errorf("changing one queue entry's skills changed another's: %v", got)
				}
			}
		}

		tx = begin(t, s, nil)
		if sh, err = tx.Shared(); err != nil {
			t.Fatal(err)
		}
		sh.PutAgent(engine.AgentState{ID: "a1", Status: schemas.AgentAway, Open: 5})
		sh.PutTeam(engine.TeamState{Name: "support"})
		rollback(t, tx)
		gotAgents, gotTeams = sharedState(t, s)
		wantCanon(t, "agents after rollback", gotAgents, agents)
		wantEach(t, "teams after rollback", gotTeams, teams)
		wantQueues(t, s, map[string]int{"support": 3})
	})
	t.Run("concurrent assignments keep open counts exact", func(t *testing.T) {
		s := su.store(t)
		const agents, capacity, workers, each = 5, 30, 20, 10
		set := ruleSet(t, agents, capacity)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				eng := engine.NewStateless()
				<-start
				for i := range each {
					n := w*each + i
					id := fmt.Sprintf("c%03d", n)
					if _, err := handle(s, eng, set, message("m-"+id, id, at(time.Duration(n)*time.Second))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		close(start)
		wait(t, &wg, "assigning workers")
		if t.Failed() {
			return
		}
		waiting := checkAssignment(t, s, agents, capacity, workers*each)
		if len(waiting) != workers*each-agents*capacity {
			t.Fatalf("%d conversations wait, want %d", len(waiting), workers*each-agents*capacity)
		}

		// Resolving frees a seat each; every unit gives it to the head of
		// the queue, so the oldest waiting get it whatever the order.
		const freed = 20
		var busy []string
		for _, c := range list(t, s, engine.ConversationFilter{Status: schemas.StatusOpen}) {
			if c.Assignee != "" && len(busy) < freed {
				busy = append(busy, c.ID)
			}
		}
		var mu sync.Mutex
		given := []string{}
		for w := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				eng := engine.NewStateless()
				for i := w; i < freed; i += 5 {
					d, err := handle(s, eng, set, resolve("r-"+busy[i], busy[i], at(time.Hour)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, a := range d.Assignments {
						given = append(given, a.Conversation)
					}
					mu.Unlock()
				}
			}()
		}
		wait(t, &wg, "resolving workers")
		if t.Failed() {
			return
		}
		sort.Strings(given)
		want := slices.Clone(waiting[:freed])
		sort.Strings(want)
		wantStrings(t, "conversations given from the queue", given, want)
		rest := checkAssignment(t, s, agents, capacity, workers*each-freed)
		wantStrings(t, "queue after resolutions", rest, waiting[freed:])
	})
}

// checkAssignment checks that every open conversation is either assigned
// or waiting, never both; that every agent has exactly capacity open
// conversations (there are more than the team can take); and that Shared
// counts them exactly. It returns the queue.
func checkAssignment(t *testing.T, s engine.Store, agents, capacity, open int) []string {
	t.Helper()
	waiting := queue(t, s, "support")
	inQueue := map[string]bool{}
	for _, id := range waiting {
		if inQueue[id] {
			t.Fatalf("%s waits twice in the queue", id)
		}
		inQueue[id] = true
	}
	count := map[string]int{}
	convs := list(t, s, engine.ConversationFilter{Status: schemas.StatusOpen})
	if len(convs) != open {
		t.Fatalf("%d open conversations, want %d", len(convs), open)
	}
	for _, c := range convs {
		switch {
		case c.Assignee != "" && inQueue[c.ID]:
			t.Fatalf("%s is assigned to %s and waits in the queue", c.ID, c.Assignee)
		case c.Assignee == "" && !inQueue[c.ID]:
			t.Fatalf("%s is neither assigned nor waiting", c.ID)
		}
		if c.Assignee != "" {
			count[c.Assignee]++
		}
		delete(inQueue, c.ID)
	}
	if len(inQueue) != 0 {
		t.Fatalf("the queue holds conversations that are not open: %v", inQueue)
	}
	want := map[string]int{}
	for i := 1; i <= agents; i++ {
		want[fmt.Sprintf("a%d", i)] = capacity
	}
	if !mapsEqual(count, want) {
		t.Fatalf("open conversations per agent = %v, want %v", count, want)
	}
	if got := openCounts(t, s); !mapsEqual(got, want) {
		t.Fatalf("Shared's open counts = %v, want %v", got, want)
	}
	wantQueues(t, s, map[string]int{"support": len(waiting)})
	return waiting
}

// queued tests that conversations waiting in a team's queue are taken by
// whichever unit finds an agent for them, unless another unit holds them.
func (su suite) queued(t *testing.T) {
	// setup gives a1, who takes one conversation, c1, and queues c2 and c3.
	setup := func(t *testing.T) (engine.Store, *rules.Set) {
		s := su.store(t)
		set := ruleSet(t, 1, 1)
		for i, id := range []string{"c1", "c2", "c3"} {
			process(t, s, set, message("m-"+id, id, at(time.Duration(i)*time.Second)))
		}
		wantStrings(t, "queue", queue(t, s, "support"), []string{"c2", "c3"})
		wantQueues(t, s, map[string]int{"support": 2})
		return s, set
	}
	t.Run("Queued skips a conversation another unit holds and holds a free one", func(t *testing.T) {
		s, _ := setup(t)
		h := begin(t, s, []string{"c2"})
		u := begin(t, s, nil)
		var c2, c3 *engine.Conv
		within(t, "Queued", func() {
			var err error
			if c2, err = u.Queued("c2"); err != nil {
				t.Errorf("Queued(c2): %v", err)
			}
			if c3, err = u.Queued("c3"); err != nil {
				t.Errorf("Queued(c3): %v", err)
			}
		})
		if t.Failed() {
			return
		}
		if c2 != nil {
			t.Fatalf("Queued(c2) while another unit holds it = %+v, want nil", c2.Conversation)
		}
		if c3 == nil || c3.ID != "c3" || !c3.Queued() || c3.Assignee != "" {
			t.Fatalf("Queued(c3) = %+v, want c3, waiting", c3)
		}
		c3.Priority = schemas.PriorityHigh
		ch := beginAsync(s, "c3")
		waits(t, ch, "Begin on a conversation a unit took with Queued")
		commit(t, u)
		b := started(t, ch, "Begin once the unit that took it committed")
		if c := stateConv(t, b, "c3"); c == nil || c.Priority != schemas.PriorityHigh || !c.Queued() {
			t.Fatalf("c3 after the commit = %+v, want it changed and still waiting", c)
		}
		rollback(t, b)
		rollback(t, h)
		if got := record(t, s, "c3").Conversation.Priority; got != schemas.PriorityHigh {
			t.Fatalf("c3's priority = %s, want the change made through Queued", got)
		}
	})
	t.Run("waiting conversations are assigned when capacity frees", func(t *testing.T) {
		s, set := setup(t)
		// The oldest, c2, is held elsewhere: the resolution gives a1 to c3.
		h := begin(t, s, []string{"c2"}, message("m2b", "c2", at(time.Minute)))
		d := process(t, s, set, resolve("r1", "c1", at(time.Minute)))
		wantEach(t, "assignments of r1", d.Assignments, []schemas.Assignment{{Conversation: "c3", Agent: "a1", Team: "support"}})
		if a := record(t, s, "c3").Conversation.Assignee; a != "a1" {
			t.Fatalf("c3's assignee = %q, want a1", a)
		}
		wantStrings(t, "queue", queue(t, s, "support"), []string{"c2"})
		if got := openCounts(t, s); got["a1"] != 1 {
			t.Fatalf("a1 has %d open conversations, want 1", got["a1"])
		}
		// c2's own unit tries the queue, but a1 is full again.
		if d := eval(t, h, set, message("m2b", "c2", at(time.Minute))); len(d.Assignments) != 0 || d.Conversation.Assignee != "" {
			t.Fatalf("m2b assigned %+v, %q; a1 is full", d.Assignments, d.Conversation.Assignee)
		}
		commit(t, h)

		// Now c3's resolution skips c2 again, and c2's next event takes a1.
		h = begin(t, s, []string{"c2"}, message("m2c", "c2", at(3*time.Minute)))
		d = process(t, s, set, resolve("r3", "c3", at(2*time.Minute)))
		if len(d.Assignments) != 0 {
			t.Fatalf("r3 assigned %+v while c2 was held elsewhere", d.Assignments)
		}
		if got := openCounts(t, s); got["a1"] != 0 {
			t.Fatalf("a1 has %d open conversations, want 0", got["a1"])
		}
		d = eval(t, h, set, message("m2c", "c2", at(3*time.Minute)))
		wantEach(t, "assignments of m2c", d.Assignments, []schemas.Assignment{{Conversation: "c2", Agent: "a1", Team: "support"}})
		commit(t, h)
		wantStrings(t, "open conversations of a1", ids(list(t, s, engine.ConversationFilter{Status: schemas.StatusOpen, Assignee: "a1"})), []string{"c2"})
		wantStrings(t, "queue", queue(t, s, "support"), []string{})
		wantQueues(t, s, map[string]int{})
		if got := openCounts(t, s); got["a1"] != 1 {
			t.Fatalf("a1 has %d open conversations, want 1", got["a1"])
		}
	})
	t.Run("Queued returns a conversation the unit holds itself", func(t *testing.T) {
		s, set := setup(t)
		u := begin(t, s, []string{"c2"})
		var c2 *engine.Conv
		within(t, "Queued", func() {
			var err error
			if c2, err = u.Queued("c2"); err != nil {
				t.Errorf("Queued(c2): %v", err)
			}
		})
		if c2 == nil || c2.ID != "c2" || !c2.Queued() {
			t.Fatalf("Queued(c2) in the unit holding it = %+v, want c2, waiting", c2)
		}
		rollback(t, u)
		// A unit of several conversations: the one it resolves frees a1
		// for the oldest waiting, which it holds too.
		r1 := resolve("r1", "c1", at(time.Minute))
		u = begin(t, s, []string{"c1", "c2"}, r1)
		d := eval(t, u, set, r1)
		wantEach(t, "assignments", d.Assignments, []schemas.Assignment{{Conversation: "c2", Agent: "a1", Team: "support"}})
		commit(t, u)
		if a := record(t, s, "c2").Conversation.Assignee; a != "a1" {
			t.Fatalf("c2's assignee = %q, want a1", a)
		}
		wantStrings(t, "queue", queue(t, s, "support"), []string{"c3"})
	})
	t.Run("an agent coming online takes the queue from a unit holding no conversation", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, agentStatus("s1", "a1", schemas.AgentAway, t0))
		process(t, s, set, message("m1", "c1", at(time.Second)))
		process(t, s, set, message("m2", "c2", at(2*time.Second)))
		wantQueues(t, s, map[string]int{"support": 2})
		d := process(t, s, set, agentStatus("s2", "a1", schemas.AgentOnline, at(time.Minute)))
		wantEach(t, "assignments", d.Assignments, []schemas.Assignment{
			{Conversation: "c1", Agent: "a1", Team: "support"},
			{Conversation: "c2", Agent: "a1", Team: "support"},
		})
		wantStrings(t, "assigned to a1", ids(list(t, s, engine.ConversationFilter{Assignee: "a1"})), []string{"c1", "c2"})
		wantQueues(t, s, map[string]int{})
		wantCanon(t, "agents", mustAgents(t, s), []engine.AgentState{{ID: "a1", Status: schemas.AgentOnline, Open: 2}})
		// A later event of c1 finds it no longer waiting.
		tx := begin(t, s, []string{"c1"})
		if c := stateConv(t, tx, "c1"); c.Queued() {
			t.Fatal("c1 still waits after the drain assigned it")
		}
		rollback(t, tx)
	})
}

func mustAgents(t *testing.T, s engine.Store) []engine.AgentState {
	t.Helper()
	agents, _ := sharedState(t, s)
	return agents
}

func wantNextDeadline(t *testing.T, s engine.Store, want time.Time, wantOK bool) {
	t.Helper()
	got, ok, err := s.NextDeadline(context.Background())
	if err != nil {
		t.Fatalf("NextDeadline: %v", err)
	}
	if ok != wantOK || !got.Equal(want) {
		t.Fatalf("NextDeadline = %v, %v; want %v, %v", got, ok, want, wantOK)
	}
}

// beginDue calls BeginDue on another goroutine, for it must not wait for
// the units holding conversations it skips.
func beginDue(t *testing.T, s engine.Store, now time.Time, limit int) (engine.Tx, []string) {
	t.Helper()
	var tx engine.Tx
	var got []string
	within(t, "BeginDue", func() {
		var err error
		if tx, got, err = s.BeginDue(context.Background(), now, limit); err != nil {
			t.Errorf("BeginDue(%v, %d): %v", now, limit, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	if tx == nil {
		if len(got) != 0 {
			t.Fatalf("BeginDue(%v, %d) returned ids %v and no unit of work", now, limit, got)
		}
		return nil, []string{}
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx, got
}

func nothingDue(t *testing.T, s engine.Store, now time.Time) {
	t.Helper()
	if tx, got := beginDue(t, s, now, 10); tx != nil {
		t.Fatalf("BeginDue(%v) = %v, want nothing due", now, got)
	}
}

// fire fires conv's deadlines due by until in tx and records them. It
// gives up after guard: a store that hands out a fresh copy of the
// conversation at every call never lets the engine see a deadline fired.
func fire(t *testing.T, tx engine.Tx, set *rules.Set, conv string, until time.Time) []schemas.Decision {
	t.Helper()
	type result struct {
		ds  []schemas.Decision
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ds, err := engine.NewStateless().FireDueIn(tx, set, conv, until)
		ch <- result{ds, err}
	}()
	r := await(t, ch, "FireDueIn("+conv+")")
	ds, err := r.ds, r.err
	if err != nil {
		t.Fatalf("FireDueIn(%s): %v", conv, err)
	}
	for _, d := range ds {
		if err := tx.Record(recordOf(d)); err != nil {
			t.Fatal(err)
		}
	}
	return ds
}

// sla tests that every SLA deadline comes due, to one unit, until a unit
// fires it.
func (su suite) sla(t *testing.T) {
	t.Run("deadlines come due, fire once and move on", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		wantNextDeadline(t, s, at(warnAfter), true)
		nothingDue(t, s, at(warnAfter-time.Nanosecond))

		tx, got := beginDue(t, s, at(warnAfter), 10)
		wantStrings(t, "due at the warning", got, []string{"c1"})
		ds := fire(t, tx, set, "c1", at(warnAfter))
		wantStrings(t, "fired", types(ds), []string{schemas.SLAWarning})
		ev := ds[0].Event
		wantTime(t, "warning time", ev.At, at(warnAfter))
		if ev.SLA == nil || ev.SLA.Policy != "standard" || ev.SLA.Metric != "first_response" || !ev.SLA.DueAt.Equal(at(breachAfter)) {
			t.Fatalf("warning's sla = %+v, want standard first_response due at %v", ev.SLA, at(breachAfter))
		}
		commit(t, tx)
		wantNextDeadline(t, s, at(breachAfter), true)
		nothingDue(t, s, at(4*time.Minute))

		tx, got = beginDue(t, s, at(10*time.Minute), 10)
		wantStrings(t, "due at the breach", got, []string{"c1"})
		ds = fire(t, tx, set, "c1", at(10*time.Minute))
		wantStrings(t, "fired", types(ds), []string{schemas.SLABreached})
		wantTime(t, "breach time", ds[0].Event.At, at(breachAfter))
		commit(t, tx)
		wantNextDeadline(t, s, time.Time{}, false)
		nothingDue(t, s, at(time.Hour))

		r := record(t, s, "c1")
		wantStrings(t, "decisions", types(r.Decisions), []string{schemas.MessageReceived, schemas.SLAWarning, schemas.SLABreached})
		wantStrings(t, "tags", r.Conversation.Tags, []string{"sla_breached"})
		if fr := r.Conversation.SLA.FirstResponse; !fr.Breached || fr.State != schemas.SLARunning {
			t.Fatalf("first response = %+v, want running and breached", fr)
		}
		// The handoff reply and the warning's Slack message wait.
		wantOutbound(t, s, engine.OutboundStats{Pending: 2, NextDue: t0})
	})
	t.Run("BeginDue takes due conversations earliest deadline first, up to limit", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		for i, id := range []string{"c3", "c1", "c2"} {
			process(t, s, set, message("m-"+id, id, at(time.Duration(i)*time.Second)))
		}
		for _, tc := range []struct {
			now   time.Time
			limit int
			want  []string
		}{
			{at(time.Hour), 10, []string{"c3", "c1", "c2"}},
			{at(time.Hour), 2, []string{"c3", "c1"}},
			{at(warnAfter + time.Second), 10, []string{"c3", "c1"}},
			{at(warnAfter), 10, []string{"c3"}},
		} {
			tx, got := beginDue(t, s, tc.now, tc.limit)
			wantStrings(t, fmt.Sprintf("BeginDue(%v, %d)", tc.now, tc.limit), got, tc.want)
			rollback(t, tx)
		}
	})
	t.Run("BeginDue skips a conversation another unit holds, without waiting", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		process(t, s, set, message("m2", "c2", at(time.Second)))
		h := begin(t, s, []string{"c1"})
		tx, got := beginDue(t, s, at(time.Hour), 10)
		wantStrings(t, "due while c1 is held", got, []string{"c2"})
		// What BeginDue holds, Begin waits for.
		ch := beginAsync(s, "c2")
		waits(t, ch, "Begin on a conversation BeginDue holds")
		fire(t, tx, set, "c2", at(time.Hour))
		commit(t, tx)
		rollback(t, started(t, ch, "Begin once the BeginDue unit committed"))
		rollback(t, h)
		tx, got = beginDue(t, s, at(time.Hour), 10)
		wantStrings(t, "due once c1 is free", got, []string{"c1"})
		rollback(t, tx)
	})
	t.Run("a rolled-back BeginDue unit leaves its deadline due", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		tx, got := beginDue(t, s, at(4*time.Minute), 10)
		wantStrings(t, "due", got, []string{"c1"})
		wantStrings(t, "fired", types(fire(t, tx, set, "c1", at(4*time.Minute))), []string{schemas.SLAWarning})
		rollback(t, tx)
		wantNextDeadline(t, s, at(warnAfter), true)
		tx, got = beginDue(t, s, at(4*time.Minute), 10)
		wantStrings(t, "due again", got, []string{"c1"})
		wantStrings(t, "fired again", types(fire(t, tx, set, "c1", at(4*time.Minute))), []string{schemas.SLAWarning})
		commit(t, tx)
		wantStrings(t, "decisions", types(record(t, s, "c1").Decisions), []string{schemas.MessageReceived, schemas.SLAWarning})
	})
	t.Run("a BeginDue unit committed without firing leaves its deadline due", func(t *testing.T) {
		// Only the unit that fires a deadline records that it fired.
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		tx, got := beginDue(t, s, at(4*time.Minute), 10)
		wantStrings(t, "due", got, []string{"c1"})
		commit(t, tx)
		wantNextDeadline(t, s, at(warnAfter), true)
		tx, got = beginDue(t, s, at(4*time.Minute), 10)
		wantStrings(t, "due again", got, []string{"c1"})
		rollback(t, tx)
	})
	t.Run("a deadline an event stops never comes due", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		process(t, s, set, agentReply("r1", "c1", "a1", at(time.Minute)))
		wantNextDeadline(t, s, time.Time{}, false)
		nothingDue(t, s, at(time.Hour))
	})
	t.Run("racing timers fire each deadline exactly once", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 2, 50)
		const convs = 20
		for i := range convs {
			id := fmt.Sprintf("c%02d", i)
			process(t, s, set, message("m-"+id, id, at(time.Duration(i)*time.Second)))
		}
		now := at(time.Hour)
		var wg sync.WaitGroup
		var mu sync.Mutex
		fired := 0
		start := make(chan struct{})
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				eng := engine.NewStateless()
				<-start
				// A timer stops when nothing is due and free; a unit holding
				// the rest fires them and looks again after its commit.
				for {
					held, ds, err := fireDue(s, eng, set, now, w%3+1)
					if err != nil {
						t.Error(err)
						return
					}
					if len(held) == 0 {
						return
					}
					mu.Lock()
					fired += len(ds)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wait(t, &wg, "racing timers")
		if t.Failed() {
			return
		}
		if fired != 2*convs {
			t.Errorf("the timers fired %d deadlines, want %d", fired, 2*convs)
		}
		for i := range convs {
			id := fmt.Sprintf("c%02d", i)
			wantStrings(t, id+" decisions", types(record(t, s, id).Decisions),
				[]string{schemas.MessageReceived, schemas.SLAWarning, schemas.SLABreached})
		}
		wantNextDeadline(t, s, time.Time{}, false)
	})
}

func outItem(o schemas.Outbound, due time.Time) engine.OutboxItem {
	return engine.OutboxItem{Outbound: o, Order: engine.OrderKey(o), At: t0, Due: due}
}

// reply is a WhatsApp reply to conv whose key is also its text.
func reply(conv, key string, due time.Time) engine.OutboxItem {
	return outItem(schemas.Outbound{Key: key, Kind: schemas.OutboundReply, Conversation: conv, Contact: conv,
		Params: map[string]any{"text": key}}, due)
}

// notify is a Slack message from conv's decision to channel.
func notify(conv, channel, key string, due time.Time) engine.OutboxItem {
	return outItem(schemas.Outbound{Key: key, Kind: schemas.OutboundNotify, Conversation: conv, Contact: conv,
		Params: map[string]any{"slack": channel, "text": key}}, due)
}

// recordItems commits, in one unit of work, a decision of conv that
// queued items.
func recordItems(t *testing.T, s engine.Store, conv string, items ...engine.OutboxItem) {
	t.Helper()
	ev := schemas.Event{ID: "rec-" + items[0].Key, Type: schemas.MessageReceived, At: t0, Conversation: conv}
	tx := begin(t, s, []string{conv}, ev)
	if err := recordIn(tx, ev, items); err != nil {
		t.Fatal(err)
	}
	commit(t, tx)
}

func recordIn(tx engine.Tx, ev schemas.Event, items []engine.OutboxItem) error {
	c, err := tx.Conversation(ev.Conversation)
	if err == nil && c == nil {
		err = tx.AddConversation(engine.NewConv(ev.Conversation, ev.At))
	}
	if err != nil {
		return err
	}
	return tx.Record(engine.Record{Decision: schemas.Decision{Event: ev}, Outbound: items})
}

func claim(t *testing.T, s engine.Store, now time.Time, limit int, lease time.Duration) []engine.OutboxItem {
	t.Helper()
	items, err := s.Claim(context.Background(), now, limit, lease)
	if err != nil {
		t.Fatalf("Claim(%v): %v", now, err)
	}
	return items
}

// claimed claims at now and checks the keys of what it got, in any order
// (Claim promises none across order keys); it returns the items by key.
func claimed(t *testing.T, s engine.Store, now time.Time, lease time.Duration, want ...string) map[string]engine.OutboxItem {
	t.Helper()
	items := claim(t, s, now, 10, lease)
	got := map[string]engine.OutboxItem{}
	keys := []string{}
	for _, it := range items {
		got[it.Key] = it
		keys = append(keys, it.Key)
	}
	sort.Strings(keys)
	want = slices.Clone(want)
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	wantStrings(t, fmt.Sprintf("Claim(%v)", now), keys, want)
	return got
}

func delivered(t *testing.T, s engine.Store, it engine.OutboxItem, when time.Time, sent *schemas.Message) {
	t.Helper()
	if err := s.Delivered(context.Background(), it, when, sent); err != nil {
		t.Fatalf("Delivered(%s): %v", it.Key, err)
	}
}

func retry(t *testing.T, s engine.Store, it engine.OutboxItem, due time.Time, cause string) {
	t.Helper()
	if err := s.Retry(context.Background(), it, due, cause); err != nil {
		t.Fatalf("Retry(%s): %v", it.Key, err)
	}
}

func dead(t *testing.T, s engine.Store, it engine.OutboxItem, when time.Time, cause string) {
	t.Helper()
	if err := s.Dead(context.Background(), it, when, cause); err != nil {
		t.Fatalf("Dead(%s): %v", it.Key, err)
	}
}

func wantOutbound(t *testing.T, s engine.Store, want engine.OutboundStats) {
	t.Helper()
	got, err := s.Outbound(context.Background())
	if err != nil {
		t.Fatalf("Outbound: %v", err)
	}
	if got.Pending != want.Pending || got.Dead != want.Dead || !got.NextDue.Equal(want.NextDue) {
		t.Fatalf("Outbound = %d pending, %d dead, next due %v; want %d, %d, %v",
			got.Pending, got.Dead, got.NextDue, want.Pending, want.Dead, want.NextDue)
	}
}

func deliveries(t *testing.T, s engine.Store, conv string, want ...schemas.Delivery) {
	t.Helper()
	wantEach(t, conv+" deliveries", record(t, s, conv).Deliveries, want)
}

// outbox tests that outbound work is delivered once, in order per order
// key.
func (su suite) outbox(t *testing.T) {
	const lease = time.Minute
	t.Run("Claim takes the oldest pending item of each order key, once", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0), reply("c1", "k2", t0))
		recordItems(t, s, "c2", reply("c2", "k3", t0))
		got := claimed(t, s, t0, lease, "k1", "k3")
		for _, key := range []string{"k1", "k3"} {
			it := got[key]
			want := reply(it.Conversation, key, t0)
			if it.ID == 0 || it.Attempts != 1 || it.Result != schemas.DeliveryPending || it.Order != want.Order ||
				it.Kind != schemas.OutboundReply || it.Contact != want.Contact || it.Params["text"] != key ||
				!it.At.Equal(t0) || !it.Due.Equal(t0) {
				t.Fatalf("claimed %s = %+v, want it as recorded (%+v), pending, attempt 1", key, it, want)
			}
		}
		if got["k1"].Conversation != "c1" || got["k3"].Conversation != "c2" {
			t.Fatalf("claimed items' conversations = %q, %q; want c1, c2", got["k1"].Conversation, got["k3"].Conversation)
		}
		claimed(t, s, at(30*time.Second), lease)
		delivered(t, s, got["k1"], at(30*time.Second), nil)
		k2 := claimed(t, s, at(30*time.Second), lease, "k2")["k2"]
		if k2.ID <= got["k1"].ID {
			t.Fatalf("k2's id %d is not after k1's %d: items of one key go in id order", k2.ID, got["k1"].ID)
		}
		claim1 := claim(t, s, at(30*time.Second), 1, lease)
		if len(claim1) != 0 {
			t.Fatalf("Claim with everything leased = %+v, want nothing", claim1)
		}
	})
	t.Run("Claim takes at most limit items", func(t *testing.T) {
		s := su.store(t)
		for _, c := range []string{"c1", "c2", "c3"} {
			recordItems(t, s, c, reply(c, "k-"+c, t0))
		}
		if got := claim(t, s, t0, 2, lease); len(got) != 2 {
			t.Fatalf("Claim with limit 2 = %d items, want 2", len(got))
		}
		if got := claim(t, s, t0, 2, lease); len(got) != 1 {
			t.Fatalf("the second Claim = %d items, want the 1 left", len(got))
		}
	})
	t.Run("a leased item is claimed again once its lease runs out", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0))
		if it := claimed(t, s, t0, lease, "k1")["k1"]; it.Attempts != 1 {
			t.Fatalf("first claim: attempts %d, want 1", it.Attempts)
		}
		claimed(t, s, at(lease-time.Second), lease)
		it := claimed(t, s, at(2*lease), lease, "k1")["k1"]
		if it.Attempts != 2 {
			t.Fatalf("claim after the lease: attempts %d, want 2", it.Attempts)
		}
		delivered(t, s, it, at(2*lease), nil)
		deliveries(t, s, "c1", schemas.Delivery{Key: "k1", Kind: schemas.OutboundReply, Result: schemas.DeliveryDelivered, Attempts: 2, At: at(2 * lease)})
		claimed(t, s, at(time.Hour), lease)
	})
	t.Run("a deliverer whose lease ran out cannot record over the attempt that claimed the item again", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0))
		late := claimed(t, s, t0, lease, "k1")["k1"]
		again := claimed(t, s, at(2*lease), lease, "k1")["k1"]
		ctx := context.Background()
		if err := s.Delivered(ctx, late, at(2*lease), nil); err == nil {
			t.Error("Delivered by the late deliverer was taken")
		}
		if err := s.Retry(ctx, late, at(3*lease), "late"); err == nil {
			t.Error("Retry by the late deliverer was taken")
		}
		if err := s.Dead(ctx, late, at(2*lease), "late"); err == nil {
			t.Error("Dead by the late deliverer was taken")
		}
		delivered(t, s, again, at(2*lease), nil)
		deliveries(t, s, "c1", schemas.Delivery{Key: "k1", Kind: schemas.OutboundReply, Result: schemas.DeliveryDelivered, Attempts: 2, At: at(2 * lease)})
	})
	t.Run("an item due later waits until then", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", at(10*time.Minute)))
		claimed(t, s, at(10*time.Minute-time.Second), lease)
		claimed(t, s, at(10*time.Minute), lease, "k1")
	})
	t.Run("Retry holds the item and those after it back until due", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0), reply("c1", "k2", t0))
		recordItems(t, s, "c2", reply("c2", "k3", t0))
		got := claimed(t, s, t0, lease, "k1", "k3")
		retry(t, s, got["k1"], at(5*time.Minute), "timeout")
		delivered(t, s, got["k3"], at(time.Second), nil)
		claimed(t, s, at(4*time.Minute), lease)
		deliveries(t, s, "c1",
			schemas.Delivery{Key: "k1", Kind: schemas.OutboundReply, Result: schemas.DeliveryPending, Attempts: 1, Error: "timeout", At: at(5 * time.Minute)},
			schemas.Delivery{Key: "k2", Kind: schemas.OutboundReply, Result: schemas.DeliveryPending, Attempts: 0, At: t0})
		k1 := claimed(t, s, at(5*time.Minute), lease, "k1")["k1"]
		if k1.Attempts != 2 || k1.Error != "timeout" {
			t.Fatalf("k1 claimed after its retry: attempts %d, error %q; want 2, timeout", k1.Attempts, k1.Error)
		}
		delivered(t, s, k1, at(5*time.Minute), nil)
		claimed(t, s, at(5*time.Minute), lease, "k2")
	})
	t.Run("Retry ends the lease", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0))
		retry(t, s, claimed(t, s, t0, lease, "k1")["k1"], at(10*time.Second), "busy")
		wantOutbound(t, s, engine.OutboundStats{Pending: 1, NextDue: at(10 * time.Second)})
		claimed(t, s, at(10*time.Second), lease, "k1")
	})
	t.Run("Dead lets the next item go and is listed newest first", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0), reply("c1", "k2", t0), reply("c1", "k3", t0))
		dead(t, s, claimed(t, s, t0, lease, "k1")["k1"], at(time.Second), "rejected")
		dead(t, s, claimed(t, s, at(time.Second), lease, "k2")["k2"], at(2*time.Second), "rejected again")
		claimed(t, s, at(2*time.Second), lease, "k3")
		items, err := s.DeadItems(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		wantEach(t, "dead items", deadView(items), []deadItem{
			{"k2", "c:c1", schemas.DeliveryDead, 1, "rejected again", at(2 * time.Second)},
			{"k1", "c:c1", schemas.DeliveryDead, 1, "rejected", at(time.Second)},
		})
		if items, err = s.DeadItems(context.Background(), 1); err != nil || len(items) != 1 || items[0].Key != "k2" {
			t.Fatalf("DeadItems(1) = %+v, %v; want k2 only", deadView(items), err)
		}
		wantOutbound(t, s, engine.OutboundStats{Pending: 1, Dead: 2, NextDue: at(2*time.Second + lease)})
		deliveries(t, s, "c1",
			schemas.Delivery{Key: "k1", Kind: schemas.OutboundReply, Result: schemas.DeliveryDead, Attempts: 1, Error: "rejected", At: at(time.Second)},
			schemas.Delivery{Key: "k2", Kind: schemas.OutboundReply, Result: schemas.DeliveryDead, Attempts: 1, Error: "rejected again", At: at(2 * time.Second)},
			schemas.Delivery{Key: "k3", Kind: schemas.OutboundReply, Result: schemas.DeliveryPending, Attempts: 1, At: t0})
	})
	t.Run("Delivered keeps the message it sent", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		process(t, s, set, message("m1", "c1", t0))
		recordItems(t, s, "c1", notify("c1", "#ops", "n1", t0))
		got := claimed(t, s, t0, lease, "m1/handoff/3", "n1")
		sent := schemas.Message{At: at(5 * time.Second), From: "triage", Text: handoffReply, ID: "wamid.1", Status: "sent"}
		delivered(t, s, got["m1/handoff/3"], at(5*time.Second), &sent)
		delivered(t, s, got["n1"], at(6*time.Second), nil)
		wantEach(t, "messages", messages(t, s, "c1"), []schemas.Message{
			{At: t0, From: "customer", Text: "hello from c1", Event: "m1"},
			sent,
		})
		deliveries(t, s, "c1",
			schemas.Delivery{Key: "m1/handoff/3", Kind: schemas.OutboundReply, Result: schemas.DeliveryDelivered, Attempts: 1, At: at(5 * time.Second)},
			schemas.Delivery{Key: "n1", Kind: schemas.OutboundNotify, Result: schemas.DeliveryDelivered, Attempts: 1, At: at(6 * time.Second)})
		wantOutbound(t, s, engine.OutboundStats{})
	})
	t.Run("Slack messages wait per channel, not per conversation", func(t *testing.T) {
		s := su.store(t)
		recordItems(t, s, "c1", notify("c1", "#ops", "n1", t0), reply("c1", "r1", t0))
		recordItems(t, s, "c2", notify("c2", "#ops", "n2", t0), notify("c2", "#sales", "n3", t0), reply("c2", "r2", t0))
		got := claimed(t, s, t0, lease, "n1", "n3", "r1", "r2")
		if got["n1"].Order != "slack:#ops" || got["n3"].Order != "slack:#sales" {
			t.Fatalf("Slack order keys = %q, %q; want slack:#ops, slack:#sales", got["n1"].Order, got["n3"].Order)
		}
		delivered(t, s, got["n1"], at(time.Second), nil)
		claimed(t, s, at(time.Second), lease, "n2")
	})
	t.Run("Outbound counts waiting and dead items and says when the next may be tried", func(t *testing.T) {
		s := su.store(t)
		wantOutbound(t, s, engine.OutboundStats{})
		recordItems(t, s, "c1", reply("c1", "k1", t0), reply("c1", "k2", t0))
		recordItems(t, s, "c2", reply("c2", "k3", at(2*time.Minute)))
		wantOutbound(t, s, engine.OutboundStats{Pending: 3, NextDue: t0})
		claimed(t, s, t0, lease, "k1")
		// A leased item may be tried again when its lease runs out.
		wantOutbound(t, s, engine.OutboundStats{Pending: 3, NextDue: at(lease)})
		k1 := claimed(t, s, at(90*time.Second), lease, "k1")["k1"]
		wantOutbound(t, s, engine.OutboundStats{Pending: 3, NextDue: at(2 * time.Minute)})
		delivered(t, s, k1, at(90*time.Second), nil)
		wantOutbound(t, s, engine.OutboundStats{Pending: 2, NextDue: t0})
		retry(t, s, claimed(t, s, at(90*time.Second), lease, "k2")["k2"], at(5*time.Minute), "timeout")
		wantOutbound(t, s, engine.OutboundStats{Pending: 2, NextDue: at(2 * time.Minute)})
		dead(t, s, claimed(t, s, at(2*time.Minute), lease, "k3")["k3"], at(2*time.Minute), "rejected")
		wantOutbound(t, s, engine.OutboundStats{Pending: 1, Dead: 1, NextDue: at(5 * time.Minute)})
		delivered(t, s, claimed(t, s, at(5*time.Minute), lease, "k2")["k2"], at(5*time.Minute), nil)
		wantOutbound(t, s, engine.OutboundStats{Dead: 1})
	})
	t.Run("Claim at the NextDue Outbound reports takes the item it names", func(t *testing.T) {
		// A deliverer sleeps until NextDue and claims then; finding nothing,
		// it would wake again at once for the same time.
		s := su.store(t)
		recordItems(t, s, "c1", reply("c1", "k1", t0))
		claimed(t, s, t0, lease, "k1")
		st, err := s.Outbound(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantTime(t, "NextDue", st.NextDue, at(lease))
		claimed(t, s, st.NextDue, lease, "k1")
	})
	t.Run("concurrent deliverers deliver each item once, in order per key", func(t *testing.T) {
		s := su.store(t)
		want := map[string][]string{}
		for i := range 16 {
			conv := fmt.Sprintf("c%d", i%3)
			r := reply(conv, fmt.Sprintf("%s/r%02d", conv, i), t0)
			n := notify(conv, "#ops", fmt.Sprintf("ops/%02d", i), t0)
			recordItems(t, s, conv, r, n)
			want[r.Order] = append(want[r.Order], r.Key)
			want[n.Order] = append(want[n.Order], n.Key)
		}
		var mu sync.Mutex
		got := map[string][]string{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				deadline := time.Now().Add(guard)
				for time.Now().Before(deadline) {
					items, err := s.Claim(ctx, t0, w%3+1, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(items) == 0 {
						st, err := s.Outbound(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if st.Pending == 0 {
							return
						}
						time.Sleep(time.Millisecond) // the rest is leased to others
						continue
					}
					for _, it := range items {
						mu.Lock()
						got[it.Order] = append(got[it.Order], it.Key)
						mu.Unlock()
						if err := s.Delivered(ctx, it, t0, nil); err != nil {
							t.Error(err)
							return
						}
					}
				}
				t.Error("the deliverers did not finish in time")
			}()
		}
		wait(t, &wg, "deliverers")
		if t.Failed() {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("delivered keys %v, want %v", got, want)
		}
		for order, keys := range want {
			wantStrings(t, "delivered for "+order, got[order], keys)
		}
		wantOutbound(t, s, engine.OutboundStats{})
	})
}

// deadItem is what DeadItems must say of an item.
type deadItem struct {
	Key      string
	Order    string
	Result   string
	Attempts int
	Error    string
	Done     time.Time
}

func deadView(items []engine.OutboxItem) []deadItem {
	out := []deadItem{}
	for _, it := range items {
		out = append(out, deadItem{it.Key, it.Order, it.Result, it.Attempts, it.Error, it.Done})
	}
	return out
}

// statuses tests the recording of WhatsApp delivery statuses on the
// messages triage sent.
func (su suite) statuses(t *testing.T) {
	s := su.store(t)
	recordItems(t, s, "c1", reply("c1", "kx", t0), reply("c1", "ky", t0), reply("c1", "kz", t0))
	for i, wamid := range []string{"wamid.X", "wamid.Y", "wamid.Z"} {
		items := claim(t, s, t0, 10, time.Minute)
		if len(items) != 1 {
			t.Fatalf("claimed %d items, want 1", len(items))
		}
		sent := schemas.Message{At: at(time.Duration(i) * time.Second), From: "triage", Text: items[0].Key, ID: wamid, Status: "sent"}
		delivered(t, s, items[0], sent.At, &sent)
	}
	update := func(id, status string) engine.StatusUpdate {
		return engine.StatusUpdate{Conversation: "c1", MessageID: id, Status: status, Key: id + "/" + status}
	}
	steps := []struct {
		name    string
		updates []engine.StatusUpdate
		fresh   []string          // keys of the updates Statuses returns
		want    map[string]string // message id -> status afterwards
	}{
		{"delivered moves sent forward",
			[]engine.StatusUpdate{update("wamid.X", "delivered")}, []string{"wamid.X/delivered"},
			map[string]string{"wamid.X": "delivered", "wamid.Y": "sent", "wamid.Z": "sent"}},
		{"read arriving first moves sent to read",
			[]engine.StatusUpdate{update("wamid.Y", "read")}, []string{"wamid.Y/read"},
			map[string]string{"wamid.X": "delivered", "wamid.Y": "read", "wamid.Z": "sent"}},
		{"a late delivered leaves read",
			[]engine.StatusUpdate{update("wamid.Y", "delivered")}, []string{"wamid.Y/delivered"},
			map[string]string{"wamid.X": "delivered", "wamid.Y": "read", "wamid.Z": "sent"}},
		{"failed is final",
			[]engine.StatusUpdate{update("wamid.Z", "failed"), update("wamid.Z", "delivered"), update("wamid.Z", "read")},
			[]string{"wamid.Z/failed", "wamid.Z/delivered", "wamid.Z/read"},
			map[string]string{"wamid.X": "delivered", "wamid.Y": "read", "wamid.Z": "failed"}},
		{"the same key twice in one call is fresh once",
			[]engine.StatusUpdate{update("wamid.X", "read"), update("wamid.X", "read")}, []string{"wamid.X/read"},
			map[string]string{"wamid.X": "read", "wamid.Y": "read", "wamid.Z": "failed"}},
		{"a redelivered webhook is not fresh",
			[]engine.StatusUpdate{update("wamid.X", "delivered"), update("wamid.Y", "read"), update("wamid.Z", "failed")}, []string{},
			map[string]string{"wamid.X": "read", "wamid.Y": "read", "wamid.Z": "failed"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fresh, err := s.Statuses(context.Background(), st.updates)
			if err != nil {
				t.Fatal(err)
			}
			keys := []string{}
			for _, u := range fresh {
				keys = append(keys, u.Key)
			}
			wantStrings(t, "fresh", keys, st.fresh)
			for _, ms := range [][]schemas.Message{messages(t, s, "c1"), record(t, s, "c1").Messages} {
				got := map[string]string{}
				for _, m := range ms {
					got[m.ID] = m.Status
				}
				for id, want := range st.want {
					if got[id] != want {
						t.Fatalf("%s's status = %q, want %q", id, got[id], want)
					}
				}
			}
		})
	}
}

// statusesEarly tests statuses that arrive before the message they name
// is stored: Meta may report "sent" before the send's answer is recorded.
func (su suite) statusesEarly(t *testing.T) {
	s := su.store(t)
	recordItems(t, s, "c1", reply("c1", "k1", t0))
	ctx := context.Background()
	fresh, err := s.Statuses(ctx, []engine.StatusUpdate{{MessageID: "wamid.E", Status: "read", Key: "wamid.E/read"}})
	if err != nil || len(fresh) != 1 {
		t.Fatalf("Statuses = %v, %v; want the update fresh", fresh, err)
	}
	it := claim(t, s, t0, 1, time.Minute)[0]
	sent := schemas.Message{At: t0, From: "triage", Text: "hi", ID: "wamid.E", Status: "sent"}
	delivered(t, s, it, t0, &sent)
	if got := messages(t, s, "c1")[0].Status; got != "read" {
		t.Fatalf("the message stored after its status is %q, want read", got)
	}
	fresh, err = s.Statuses(ctx, []engine.StatusUpdate{{MessageID: "wamid.E", Status: "failed", Key: "wamid.E/failed"}})
	if err != nil || len(fresh) != 1 || fresh[0].Conversation != "c1" {
		t.Fatalf("Statuses = %+v, %v; want the update fresh, with the message's conversation c1", fresh, err)
	}
}

// reads tests what the API shows of the store.
func (su suite) reads(t *testing.T) {
	t.Run("Conversation returns all a conversation keeps", func(t *testing.T) {
		s := su.store(t)
		set := ruleSet(t, 1, 5)
		m1 := message("m1", "c1", t0)
		m1.Text, m1.Contact = "hello", &schemas.Contact{ID: "p1", Name: "Asha", Language: "en"}
		d1 := process(t, s, set, m1)
		items := claim(t, s, at(10*time.Second), 10, time.Minute)
		if len(items) != 1 {
			t.Fatalf("claimed %d items, want the handoff reply", len(items))
		}
		sent := schemas.Message{At: at(10 * time.Second), From: "triage", Text: handoffReply, ID: "wamid.1", Status: "sent"}
		delivered(t, s, items[0], sent.At, &sent)
		d2 := process(t, s, set, agentReply("m2", "c1", "a1", at(time.Minute)))
		m3 := message("m3", "c1", at(2*time.Minute))
		m3.Text = "my order is late"
		d3 := process(t, s, set, m3)

		r := record(t, s, "c1")
		if r.Conversation.ID != "c1" || r.Conversation.Contact != "p1" || r.Conversation.Assignee != "a1" || r.Conversation.Messages != 2 {
			t.Fatalf("conversation = %+v, want c1 of p1, a1's, 2 messages", r.Conversation)
		}
		wantCanon(t, "conversation", r.Conversation, *d3.Conversation)
		wantEach(t, "notes", r.Notes, []schemas.Note{{At: t0, Text: "handed off", Author: "rule:handoff"}})
		wantCanon(t, "contact", r.Contact, schemas.Contact{ID: "p1", Name: "Asha", Language: "en"})
		wantEach(t, "messages", r.Messages, []schemas.Message{
			{At: t0, From: "customer", Text: "hello", Event: "m1"},
			sent,
			{At: at(time.Minute), From: "agent:a1", Text: "hi, how can I help?", Event: "m2"},
			{At: at(2 * time.Minute), From: "customer", Text: "my order is late", Event: "m3"},
		})
		wantEach(t, "Messages", messages(t, s, "c1"), r.Messages)
		wantEach(t, "decisions", r.Decisions, []schemas.Decision{d1, d2, d3})
		wantEach(t, "deliveries", r.Deliveries, []schemas.Delivery{
			{Key: "m1/handoff/3", Kind: schemas.OutboundReply, Result: schemas.DeliveryDelivered, Attempts: 1, At: at(10 * time.Second)},
		})
		wantEach(t, "Conversations", list(t, s, engine.ConversationFilter{}), []schemas.Conversation{*d3.Conversation})
		p, ok := contactOf(t, s, "p1")
		if !ok {
			t.Fatal("Contact(p1): not found")
		}
		wantCanon(t, "Contact", p, schemas.Contact{ID: "p1", Name: "Asha", Language: "en"})
	})
	t.Run("a contact the engine made for a conversation is kept", func(t *testing.T) {
		// An event without contact details names the conversation's
		// contact by the conversation's id.
		s := su.store(t)
		process(t, s, ruleSet(t, 1, 5), message("m1", "c1", t0))
		p, ok := contactOf(t, s, "c1")
		if !ok {
			t.Fatal("Contact(c1): not found")
		}
		wantCanon(t, "Contact", p, schemas.Contact{ID: "c1"})
		r := record(t, s, "c1")
		if r.Conversation.Contact != "c1" {
			t.Fatalf("the conversation's contact = %q, want c1", r.Conversation.Contact)
		}
		wantCanon(t, "the record's contact", r.Contact, schemas.Contact{ID: "c1"})
	})
	t.Run("reads of what is not there", func(t *testing.T) {
		s := su.store(t)
		noRecord(t, s, "c1")
		if ms := messages(t, s, "c1"); len(ms) != 0 {
			t.Fatalf("Messages of an unknown conversation = %+v", ms)
		}
		if p, ok := contactOf(t, s, "p1"); ok {
			t.Fatalf("Contact of an unknown contact = %+v", p)
		}
		if cs := list(t, s, engine.ConversationFilter{}); len(cs) != 0 {
			t.Fatalf("Conversations of an empty store = %+v", cs)
		}
		wantQueues(t, s, map[string]int{})
		wantNextDeadline(t, s, time.Time{}, false)
		wantOutbound(t, s, engine.OutboundStats{})
		if items, err := s.DeadItems(context.Background(), 10); err != nil || len(items) != 0 {
			t.Fatalf("DeadItems of an empty store = %+v, %v", items, err)
		}
	})
	t.Run("Conversations filters and sorts by id", func(t *testing.T) {
		s := su.store(t)
		convs := []schemas.Conversation{
			{ID: "c5", Status: schemas.StatusOpen, Team: "billing"},
			{ID: "c10", Status: schemas.StatusOpen, Team: "support", Assignee: "a1"},
			{ID: "c2", Status: schemas.StatusOpen, Team: "support"},
			{ID: "c3", Status: schemas.StatusPending, Team: "billing", Assignee: "a2"},
			{ID: "c4", Status: schemas.StatusResolved, Team: "support", Assignee: "a1"},
			{ID: "c6", Status: schemas.StatusOpen},
			{ID: "c7", Status: schemas.StatusResolved, Team: "support"},
		}
		for _, c := range convs {
			tx := begin(t, s, []string{c.ID})
			conv := engine.NewConv(c.ID, t0)
			conv.Status, conv.Team, conv.Assignee = c.Status, c.Team, c.Assignee
			if err := tx.AddConversation(conv); err != nil {
				t.Fatal(err)
			}
			commit(t, tx)
		}
		for _, tc := range []struct {
			name string
			f    engine.ConversationFilter
			want []string
		}{
			{"everything", engine.ConversationFilter{}, []string{"c10", "c2", "c3", "c4", "c5", "c6", "c7"}},
			{"status", engine.ConversationFilter{Status: schemas.StatusOpen}, []string{"c10", "c2", "c5", "c6"}},
			{"team", engine.ConversationFilter{Team: "support"}, []string{"c10", "c2", "c4", "c7"}},
			{"assignee", engine.ConversationFilter{Assignee: "a1"}, []string{"c10", "c4"}},
			{"status and team", engine.ConversationFilter{Status: schemas.StatusOpen, Team: "support"}, []string{"c10", "c2"}},
			{"nothing matches", engine.ConversationFilter{Team: "sales"}, []string{}},
			{"agent view", engine.ConversationFilter{Teams: []string{"support"}, Agent: "a2"}, []string{"c2", "c3", "c7"}},
			{"agent view of two teams", engine.ConversationFilter{Teams: []string{"support", "billing"}}, []string{"c2", "c5", "c7"}},
			{"agent view of no team", engine.ConversationFilter{Teams: []string{}, Agent: "a1"}, []string{"c10", "c4"}},
			{"agent view and status", engine.ConversationFilter{Status: schemas.StatusOpen, Teams: []string{"billing"}, Agent: "a1"}, []string{"c10", "c5"}},
			{"first page", engine.ConversationFilter{Limit: 3}, []string{"c10", "c2", "c3"}},
			{"next page", engine.ConversationFilter{After: "c3", Limit: 3}, []string{"c4", "c5", "c6"}},
			{"last page", engine.ConversationFilter{After: "c6", Limit: 3}, []string{"c7"}},
			{"after the last", engine.ConversationFilter{After: "c7"}, []string{}},
			{"after an id that is not there", engine.ConversationFilter{After: "c35"}, []string{"c4", "c5", "c6", "c7"}},
			{"page of a filter", engine.ConversationFilter{Status: schemas.StatusOpen, After: "c10", Limit: 2}, []string{"c2", "c5"}},
			{"page of an agent view", engine.ConversationFilter{Teams: []string{"support"}, Agent: "a2", After: "c2", Limit: 1}, []string{"c3"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := list(t, s, tc.f)
				wantStrings(t, "Conversations", ids(got), tc.want)
				for _, c := range got {
					if !tc.f.Match(&c) || c.ID <= tc.f.After {
						t.Fatalf("%+v does not match %+v", c, tc.f)
					}
				}
			})
		}
	})
}
