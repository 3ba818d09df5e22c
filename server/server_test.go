package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-dev/triage/connectors/httpapi"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/server"
)

// botFunc adapts a function to server.BotAsker.
type botFunc func(context.Context, server.BotQuestion) (server.BotAnswer, error)

func (f botFunc) AskBot(ctx context.Context, q server.BotQuestion) (server.BotAnswer, error) {
	return f(ctx, q)
}

type fixture struct {
	srv *server.Server
	wa  *whatsapptest.Server
	dir string
	h   *reload.Holder
}

func start(t *testing.T, dir string, bot server.BotAsker) *fixture {
	t.Helper()
	h, err := reload.New(dir, rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wa := whatsapptest.NewServer()
	t.Cleanup(wa.Close)
	client := &whatsapp.Client{BaseURL: wa.BaseURL(), PhoneNumberID: "106540352242922", Token: "tok"}
	srv, err := server.New(server.Options{
		Holder:   h,
		Senders:  server.Senders{WhatsApp: client, Bot: bot},
		Registry: prometheus.NewRegistry(),
		Retry:    server.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &fixture{srv: srv, wa: wa, dir: dir, h: h}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// texts lists what the fake Cloud API was asked to send, in order.
func (f *fixture) texts() []string {
	var out []string
	for _, r := range f.wa.Requests() {
		if r.Status == 200 && r.Message.Text != nil {
			out = append(out, r.Message.To+": "+r.Message.Text.Body)
		}
	}
	return out
}

func msg(id, conv, text string) schemas.Event {
	return schemas.Event{ID: id, Type: schemas.MessageReceived, At: time.Now().UTC(), Conversation: conv,
		Contact: &schemas.Contact{ID: "9198" + conv, Name: "Priya"}, Text: text}
}

func confident(text string) server.BotAsker {
	return botFunc(func(context.Context, server.BotQuestion) (server.BotAnswer, error) {
		return server.BotAnswer{Text: text, Confidence: 0.9}, nil
	})
}

func TestEscapeHatchReachesWhatsApp(t *testing.T) {
	f := start(t, "../examples/rules", confident("hello"))
	if err := f.srv.Submit(context.Background(), []schemas.Event{msg("m1", "c1", "Can I SPEAK TO SOMEONE?")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the handoff to be sent", func() bool { return len(f.texts()) == 1 })
	got := f.texts()[0]
	if !strings.HasPrefix(got, "9198c1: Of course. I'm bringing in Anita from our team; they'll reply") {
		t.Errorf("sent %q", got)
	}
	v, ok, _ := f.srv.Conversation(context.Background(), "c1")
	if !ok || v.Conversation.Assignee != "anita" || len(v.Decisions) != 1 || v.Messages[0].From != "customer" {
		t.Errorf("view: %+v", v)
	}
}

func TestBotLoopAndOrderThroughAnOutage(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	bot := botFunc(func(_ context.Context, q server.BotQuestion) (server.BotAnswer, error) {
		mu.Lock()
		asked = append(asked, q.Text)
		mu.Unlock()
		return server.BotAnswer{Text: "Answer to: " + q.Text, Confidence: 0.95}, nil
	})
	f := start(t, "../examples/rules", bot)
	// WhatsApp is down for a while: 500s, then a throttle, then fine.
	f.wa.FailNext(3, whatsapptest.Reply{Status: 500})
	ctx := context.Background()
	for i, text := range []string{"When do you open?", "And on Sunday?"} {
		if err := f.srv.Submit(ctx, []schemas.Event{msg("m"+string(rune('1'+i)), "c2", text)}, "test"); err != nil {
			t.Fatal(err)
		}
		// The second question waits for the first answer, as a customer would.
		eventually(t, "the bot's answer to go out", func() bool { return len(f.texts()) == i+1 })
	}
	want := []string{"9198c2: Answer to: When do you open?", "9198c2: Answer to: And on Sunday?"}
	if got := f.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", got, want)
	}
	// The deliveries record what the decisions' "queued" became: the first
	// reply needed four tries (three 500s), everything was delivered.
	v, _, _ := f.srv.Conversation(ctx, "c2")
	var replies []httpapi.Delivery
	for _, d := range v.Deliveries {
		if d.Result != "delivered" {
			t.Errorf("delivery %+v", d)
		}
		if d.Kind == schemas.OutboundReply {
			replies = append(replies, d)
		}
	}
	if len(replies) != 2 || replies[0].Attempts != 4 || replies[1].Attempts != 1 {
		t.Errorf("reply deliveries %+v", replies)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 {
		t.Errorf("bot asked %q", asked)
	}
}

func TestABotThatFailsIsNotConfident(t *testing.T) {
	bot := botFunc(func(context.Context, server.BotQuestion) (server.BotAnswer, error) {
		return server.BotAnswer{}, errors.New("connection refused")
	})
	f := start(t, "../examples/rules", bot)
	if err := f.srv.Submit(context.Background(), []schemas.Event{msg("m1", "c3", "Where is my parcel?")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the honest low-confidence handoff", func() bool { return len(f.texts()) == 1 })
	if got := f.texts()[0]; !strings.Contains(got, "I'm not sure I have the right answer for that, so I'm bringing in") {
		t.Errorf("sent %q", got)
	}
}

func TestInvalidEventsAreRefusedWhole(t *testing.T) {
	f := start(t, "../examples/rules", nil)
	err := f.srv.Submit(context.Background(), []schemas.Event{msg("m1", "c4", "hi"), {ID: "x", Type: "nope"}}, "test")
	if err == nil || !strings.Contains(err.Error(), `unknown type "nope"`) {
		t.Fatalf("err %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, ok, _ := f.srv.Conversation(context.Background(), "c4"); ok {
		t.Error("the valid event of a refused batch was accepted")
	}
}

func TestSLABreachFiresOnTheWallClock(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`version: 1
teams:
  support: {members: [{id: anita}]}
sla:
  - {name: fast, first_response: 1s}
rules:
  - {name: handoff, on: [message.received], actions: [{escalate: {reason: k}}, {assign: {team: support}}]}
  - {name: breach, on: [sla.breached], actions: [{tag: {add: [late]}}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := start(t, dir, nil)
	if err := f.srv.Submit(context.Background(), []schemas.Event{msg("m1", "c5", "help")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the breach to fire", func() bool {
		v, _, _ := f.srv.Conversation(context.Background(), "c5")
		return len(v.Conversation.Tags) == 1 && v.Conversation.Tags[0] == "late" && v.Conversation.SLA.FirstResponse.Breached
	})
}

func TestReloadKeepsServing(t *testing.T) {
	dir := t.TempDir()
	write := func(th string) {
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("version: 1\nrules:\n  - {name: r, on: [message.received], when: 'event.text == \""+th+"\"', actions: [{tag: {add: [hit]}}]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	f := start(t, dir, nil)
	write("b")
	if err := f.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("version: 1\nrules: [{name: r}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Reload(context.Background()); err == nil {
		t.Fatal("a broken reload must fail")
	}
	st := f.srv.Rules(context.Background())
	if st.OK || len(st.Problems) == 0 {
		t.Fatalf("status %+v", st)
	}
	if err := f.srv.Submit(context.Background(), []schemas.Event{msg("m1", "c6", "b")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event to be evaluated on the last good set", func() bool {
		v, _, _ := f.srv.Conversation(context.Background(), "c6")
		return len(v.Conversation.Tags) == 1 && v.Decisions[0].RuleSet == st.Version
	})
}

func TestQueueMetricPerTeam(t *testing.T) {
	h, err := reload.New("../examples/rules", rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Options{Holder: h, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	defer srv.Close(context.Background())
	ctx := context.Background()
	// Everyone in billing is offline: a refund waits in billing's queue.
	for i, agent := range []string{"dev", "erin"} {
		ev := schemas.Event{ID: "s" + string(rune('0'+i)), Type: schemas.AgentStatus, At: time.Now().UTC(), Agent: agent, Status: "offline"}
		if err := srv.Submit(ctx, []schemas.Event{ev}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Submit(ctx, []schemas.Event{msg("m1", "q1", "I want a refund")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "billing's queue to show one waiting", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "triage_team_queue_waiting" {
				continue
			}
			got := map[string]float64{}
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
			return got["billing"] == 1 && got["support"] == 0
		}
		return false
	})
}

// TestCloseFinishesTheBotsAnswer: a question the bot is still answering
// when shutdown starts is answered, evaluated and replied to before Close
// returns; nothing the customer is owed is dropped.
func TestCloseFinishesTheBotsAnswer(t *testing.T) {
	h, err := reload.New("../examples/rules", rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wa := whatsapptest.NewServer()
	defer wa.Close()
	asked := make(chan struct{})
	slow := botFunc(func(context.Context, server.BotQuestion) (server.BotAnswer, error) {
		close(asked)
		time.Sleep(200 * time.Millisecond)
		return server.BotAnswer{Text: "We open at nine.", Confidence: 0.9}, nil
	})
	srv, err := server.New(server.Options{
		Holder:  h,
		Senders: server.Senders{WhatsApp: &whatsapp.Client{BaseURL: wa.BaseURL(), PhoneNumberID: "1", Token: "t"}, Bot: slow},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	if err := srv.Submit(context.Background(), []schemas.Event{msg("m1", "c7", "When do you open?")}, "test"); err != nil {
		t.Fatal(err)
	}
	<-asked
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{wa: wa}
	if got := f.texts(); len(got) != 1 || got[0] != "9198c7: We open at nine." {
		t.Errorf("after Close the WhatsApp fake got %q", got)
	}
}

// TestStatuses: statuses only move forward, and a 131047 failure closes
// the window so the next reply is skipped rather than sent and refused.
func TestStatuses(t *testing.T) {
	f := start(t, "../examples/rules", confident("We open at nine."))
	ctx := context.Background()
	if err := f.srv.Submit(ctx, []schemas.Event{msg("m1", "c8", "When do you open?")}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bot's answer to go out", func() bool { return len(f.texts()) == 1 })
	id := f.wa.Requests()[0].MessageID
	// The fake answers before the dispatcher records the message it sent;
	// these statuses name no conversation (a webhook's do), so they can
	// only find the message once it is recorded.
	eventually(t, "the sent message to be recorded", func() bool {
		v, _, _ := f.srv.Conversation(ctx, "c8")
		return len(v.Messages) > 0 && v.Messages[len(v.Messages)-1].ID == id
	})
	at := time.Now().UTC()
	_ = f.srv.Statuses(ctx, []whatsapp.Status{{ID: id, Status: "read", Timestamp: at}, {ID: id, Status: "delivered", Timestamp: at}})
	v, _, _ := f.srv.Conversation(ctx, "c8")
	if got := v.Messages[len(v.Messages)-1].Status; got != "read" {
		t.Errorf("a late delivered replaced read: %q", got)
	}
	_ = f.srv.Statuses(ctx, []whatsapp.Status{{ID: id, Status: "failed", ErrorCode: whatsapp.CodeReEngagement, Timestamp: at}})
	if err := f.srv.Submit(ctx, []schemas.Event{{ID: "b9", Type: schemas.BotAnswered, At: time.Now().UTC(), Conversation: "c8", Text: "more", Confidence: 0.9}}, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the next reply to be skipped as window_closed", func() bool {
		v, _, _ := f.srv.Conversation(ctx, "c8")
		last := v.Decisions[len(v.Decisions)-1]
		return last.Event.ID == "b9" && len(last.Actions) == 1 && last.Actions[0].Reason == "window_closed"
	})
}

// TestBackpressure: while WhatsApp is down and replies pile up, new events
// are refused (the webhook answers 503, Meta retries) instead of queueing
// replies for minutes; once deliveries drain they are taken again.
func TestBackpressure(t *testing.T) {
	h, err := reload.New("../examples/rules", rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wa := whatsapptest.NewServer()
	defer wa.Close()
	wa.FailNext(1000, whatsapptest.Reply{Status: 500})
	srv, err := server.New(server.Options{
		Holder:     h,
		Senders:    server.Senders{WhatsApp: &whatsapp.Client{BaseURL: wa.BaseURL(), PhoneNumberID: "1", Token: "t"}},
		MaxPending: 2,
		Retry:      server.RetryPolicy{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	defer srv.Close(context.Background())
	ctx := context.Background()
	for i, c := range []string{"p1", "p2"} {
		if err := srv.Submit(ctx, []schemas.Event{msg("h"+string(rune('0'+i)), c, "agent please")}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "new events to be refused", func() bool {
		return srv.Submit(ctx, []schemas.Event{msg("h9", "p3", "agent please")}, "test") != nil && srv.Ready(ctx) != nil
	})
	wa.Reset() // WhatsApp is back
	eventually(t, "events to be taken again", func() bool {
		return srv.Submit(ctx, []schemas.Event{msg("h8", "p4", "agent please")}, "test") == nil
	})
}

// gateStore holds every unit of work of one conversation open until
// release is closed.
type gateStore struct {
	engine.Store
	conv    string
	entered chan struct{}
	release chan struct{}
}

func (g *gateStore) Begin(ctx context.Context, convs []string, events []schemas.Event) (engine.Tx, error) {
	tx, err := g.Store.Begin(ctx, convs, events)
	if err == nil && slices.Contains(convs, g.conv) {
		g.entered <- struct{}{}
		<-g.release
	}
	return tx, err
}

// TestConversationsEvaluateInParallel: while one conversation's unit of
// work is held open, another conversation's event is evaluated and
// committed. Were evaluation serialised, the second Submit would wait for
// the first, and the test would time out.
func TestConversationsEvaluateInParallel(t *testing.T) {
	h, err := reload.New("../examples/rules", rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gateStore{Store: engine.NewMemoryStore(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, err := server.New(server.Options{Holder: h, Store: gate, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	slow := msg("s1", "slow", "hello")
	var fast schemas.Event
	for i := 0; ; i++ {
		fast = msg(fmt.Sprintf("f%d", i), fmt.Sprintf("fast%d", i), "hello")
		if srv.ShardOf(fast) != srv.ShardOf(slow) {
			break
		}
		if i == 100 {
			t.Fatal("no conversation found on another shard")
		}
	}
	gate.conv = "slow"
	srv.Start(context.Background())
	defer srv.Close(context.Background())
	var once sync.Once
	release := func() { once.Do(func() { close(gate.release) }) }
	defer release() // before Close: a failing test must not hang it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	slowDone := make(chan error, 1)
	go func() { slowDone <- srv.Submit(ctx, []schemas.Event{slow}, "test") }()
	<-gate.entered // the slow conversation's unit is open and held
	if err := srv.Submit(ctx, []schemas.Event{fast}, "test"); err != nil {
		t.Fatalf("the other conversation's event waited for the held one: %v", err)
	}
	if v, ok, _ := srv.Conversation(ctx, fast.Conversation); !ok || len(v.Decisions) == 0 || v.Decisions[0].Event.ID != fast.ID {
		t.Fatalf("the other conversation was not evaluated: %+v", v)
	}
	if _, ok, _ := srv.Conversation(ctx, "slow"); ok {
		t.Fatal("the held conversation is visible before its unit committed")
	}
	release()
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	// (The bot's answer may follow its first decision by now.)
	if v, ok, _ := srv.Conversation(ctx, "slow"); !ok || len(v.Decisions) == 0 || v.Decisions[0].Event.ID != "s1" {
		t.Fatalf("the held conversation was not evaluated after its release: %+v", v)
	}
}

func TestDefaultShards(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		procs      int
		memory, pg int
	}{
		{1, 2, 1},
		{2, 2, 1},
		{3, 3, 1},
		{8, 8, 4},
	} {
		runtime.GOMAXPROCS(c.procs)
		if got := server.DefaultShards(true); got != c.memory {
			t.Errorf("%d CPUs, memory store: %d shards, want %d", c.procs, got, c.memory)
		}
		if got := server.DefaultShards(false); got != c.pg {
			t.Errorf("%d CPUs, PostgreSQL: %d shards, want %d", c.procs, got, c.pg)
		}
	}
}
