package main

// End-to-end tests of `triage serve`: the daemon is built in-process the way
// serveCmd.Run builds it (newServeStack mirrors its wiring, with the fake
// Cloud API, the fake Slack and the fake or FAQ bot behind the connectors'
// real clients), served with httptest over loopback, and driven only over
// HTTP: signed webhook payloads in, the fakes' recorded requests and the
// /v1 API out. Asynchronous effects are awaited by polling with a generous
// deadline; nothing here asserts how fast anything is.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/bot/bottest"
	"github.com/triage-dev/triage/connectors/httpapi"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
	"github.com/triage-dev/triage/connectors/slack/slacktest"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/server"
)

const (
	e2eSecret          = "test_app_secret"
	e2eVerifyToken     = "e2e-verify-token"
	e2ePhoneID         = "106540352242922" // the business number of Meta's sample payloads
	e2eWAToken         = "e2e-cloud-api-token"
	e2eAdminToken      = "e2e-admin-token"
	e2eServiceToken    = "e2e-service-token"
	e2eSupervisorToken = "e2e-supervisor-token"
	e2eAgentToken      = "e2e-agent-anita-token"

	e2eExampleRules = "../../examples/rules"
	e2eExampleFAQ   = "../../examples/faq.yaml"

	// e2eDeadline bounds every wait for an asynchronous effect. It is a
	// guard against hanging, not a performance assertion.
	e2eDeadline = 10 * time.Second
)

// e2eMonday is Monday 2026-01-05 05:00 UTC, 10:30 in Kolkata: inside the
// office hours of examples/rules/sla.yaml, so the handoff messages promise
// "within 5 minutes".
var e2eMonday = time.Date(2026, 1, 5, 5, 0, 0, 0, time.UTC)

// e2eSlackChannels are the channels examples/rules notifies.
var e2eSlackChannels = []string{"#support", "#support-urgent", "#billing", "#support-leads"}

// stackOptions shape one in-process daemon.
type stackOptions struct {
	// Rules is the rule directory; empty is examples/rules.
	Rules string
	// Bot is "fake" (a bottest server behind bot.HTTPBot), "faq" (the
	// built-in FAQ bot on examples/faq.yaml), "none" (no bot section and
	// no faq.yaml used), or "" (what serve.go does without a bot section:
	// the faq.yaml beside the rule directory, if there is one).
	Bot string
	// Clock is where the daemon's wall clock starts; zero is e2eMonday.
	// It runs on with real time unless FixedClock. The daemon's wall clock
	// times SLA deadlines and the bot's answers; pinning it next to the
	// events' times keeps the 24-hour window open and the office open.
	Clock      time.Time
	FixedClock bool
	// Retry is the delivery retry policy; zero values take the server's
	// defaults, as in serve.go.
	Retry server.RetryPolicy
	// Workers is the outbox's parallelism; 0 is the server's default.
	Workers int
	// Watch runs the rule directory watcher, as serve.go does.
	Watch bool
	// SlackInterval is the Slack client's MinInterval between two posts
	// to a channel; 0 is the client's default (1 s), as in serve.go.
	SlackInterval time.Duration
	// Quiet discards the daemon's log instead of keeping it for failures.
	Quiet bool
	// Answered, when set, receives a value each time the fake Cloud API
	// has answered a request: the benchmark's end-to-end clock.
	Answered chan<- struct{}
	// Database is a PostgreSQL URL; empty keeps state in memory.
	Database string
	// Shards and MaxBatch set the evaluation section; 0 is the default.
	Shards, MaxBatch int
}

// serveStack is one daemon with its fakes.
type serveStack struct {
	URL    string
	client *http.Client
	srv    *server.Server
	holder *reload.Holder
	wa     *whatsapptest.Server
	slack  *slacktest.Server
	bot    *bottest.Server // nil unless Bot is "fake"
	rules  string
	logs   *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newServeStack builds and starts a daemon the way serveCmd.Run does, with
// the configuration a user would write pointing at the fakes. Everything is
// torn down when tb ends.
func newServeStack(tb testing.TB, o stackOptions) *serveStack {
	tb.Helper()
	if o.Rules == "" {
		o.Rules = e2eExampleRules
	}
	if o.Clock.IsZero() {
		o.Clock = e2eMonday
	}
	st := &serveStack{rules: o.Rules, logs: &syncBuffer{}}
	var logw io.Writer = st.logs
	if o.Quiet {
		logw = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tb.Cleanup(func() {
		if tb.Failed() && !o.Quiet {
			tb.Logf("daemon log:\n%s", st.logs.String())
		}
	})

	st.wa = whatsapptest.NewServer()
	st.wa.RequireToken(e2eWAToken)
	tb.Cleanup(st.wa.Close)
	st.slack = slacktest.NewServer()
	tb.Cleanup(st.slack.Close)
	hooks := map[string]string{}
	for _, ch := range e2eSlackChannels {
		hooks[ch] = st.slack.WebhookURL(ch)
	}

	apiURL := st.wa.BaseURL()
	if o.Answered != nil {
		fake := st.wa.Config.Handler
		tap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fake.ServeHTTP(w, r)
			o.Answered <- struct{}{}
		}))
		tb.Cleanup(tap.Close)
		apiURL = tap.URL + "/" + whatsapptest.Version
	}

	// The configuration file of spec section 10, as serve.go reads it.
	cfg := serveConfig{
		Rules: o.Rules,
		WhatsApp: &whatsAppConfig{
			PhoneNumberID: e2ePhoneID, AccessToken: e2eWAToken, AppSecret: e2eSecret,
			VerifyToken: e2eVerifyToken, APIURL: apiURL,
		},
		Slack: &slackConfig{Webhooks: hooks},
		Access: []accessEntry{
			{Name: "ops", Token: e2eAdminToken, Role: "admin"},
			{Name: "bot-service", Token: e2eServiceToken, Role: "service"},
			{Name: "lead", Token: e2eSupervisorToken, Role: "supervisor"},
			{Name: "anita", Token: e2eAgentToken, Role: "agent", Agent: "anita"},
		},
	}
	switch o.Bot {
	case "fake":
		st.bot = bottest.New(tb)
		cfg.Bot = &botConfig{URL: st.bot.URL, Timeout: "5s"}
	case "faq":
		cfg.Bot = &botConfig{FAQ: e2eExampleFAQ}
	case "", "none":
	default:
		tb.Fatalf("stackOptions.Bot %q", o.Bot)
	}

	cfg.Database = o.Database
	if o.Database == freshSchema {
		cfg.Database = pgtest.Schema(tb)
	}
	cfg.Delivery.Workers = o.Workers
	cfg.Evaluation.Shards, cfg.Evaluation.MaxBatch = o.Shards, o.MaxBatch
	cfg.Delivery.Attempts, cfg.Delivery.BotAttempts = o.Retry.Attempts, o.Retry.BotAttempts
	for _, d := range []struct {
		into *string
		v    time.Duration
	}{{&cfg.Delivery.Backoff, o.Retry.Base}, {&cfg.Delivery.MaxBackoff, o.Retry.Max}, {&cfg.Delivery.Timeout, o.Retry.Timeout}, {&cfg.Delivery.Lease, o.Retry.Lease}} {
		if d.v > 0 {
			*d.into = d.v.String()
		}
	}
	// serve.go's wiring, with two seams: the wall clock (see
	// stackOptions.Clock) and the Slack client's pace.
	start := time.Now()
	now := func() time.Time { return o.Clock.Add(time.Since(start)) }
	if o.FixedClock {
		now = func() time.Time { return o.Clock }
	}
	d, err := newDaemon(context.Background(), cfg, log, io.Discard, seams{now: now, slackInterval: o.SlackInterval})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.close)
	srv, holder := d.srv, d.holder
	st.srv, st.holder = srv, holder
	api := d.api

	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(context.WithoutCancel(ctx))
	var watching sync.WaitGroup
	if o.Watch {
		watching.Go(func() {
			if err := holder.Watch(ctx, 50*time.Millisecond, 5*time.Second); err != nil {
				log.Error("rule watcher stopped", "error", err)
			}
		})
	}
	hs := httptest.NewServer(api.Handler())
	st.URL = hs.URL
	st.client = hs.Client()
	tb.Cleanup(func() {
		hs.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer scancel()
		if err := srv.Close(sctx); err != nil {
			tb.Errorf("daemon shutdown: %v", err)
		}
		cancel()
		watching.Wait()
	})
	return st
}

// eachStore runs an end-to-end test with state in memory and in
// PostgreSQL (each stack on a schema of its own; skipped, loudly, without
// a server).
func eachStore(t *testing.T, test func(t *testing.T, db string)) {
	t.Run("memory", func(t *testing.T) { test(t, "") })
	t.Run("postgres", func(t *testing.T) {
		pgtest.URL(t)
		test(t, freshSchema)
	})
}

// freshSchema, as stackOptions.Database, gives the stack a new schema.
const freshSchema = "fresh-schema"

// do sends one request to the daemon; token "" sends no Authorization.
func (s *serveStack) do(tb testing.TB, method, path, token string, body []byte) (int, []byte) {
	tb.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return s.send(tb, req)
}

func (s *serveStack) send(tb testing.TB, req *http.Request) (int, []byte) {
	tb.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read answer: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, b
}

// postWebhook POSTs body to the webhook with signature as its
// X-Hub-Signature-256 header ("" sends none), the way Meta does.
func (s *serveStack) postWebhook(tb testing.TB, body []byte, signature string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/webhooks/whatsapp", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	if signature != "" {
		req.Header.Set(whatsapp.SignatureHeader, signature)
	}
	return s.send(tb, req)
}

// deliver POSTs a correctly signed webhook and requires a 200.
func (s *serveStack) deliver(tb testing.TB, body []byte) {
	tb.Helper()
	if code, ans := s.postWebhook(tb, body, whatsapptest.Sign(body, e2eSecret)); code != http.StatusOK {
		tb.Fatalf("webhook: %d %s", code, ans)
	}
}

// customer writes text to the business from waID at at.
func (s *serveStack) customer(tb testing.TB, waID, name, msgID, text string, at time.Time) {
	tb.Helper()
	s.deliver(tb, whatsapptest.TextWebhook(e2ePhoneID, waID, name, msgID, text, at))
}

// sent lists the text messages the fake Cloud API accepted for to, in the
// order it accepted them.
func (s *serveStack) sent(to string) []string {
	var out []string
	for _, r := range s.wa.Requests() {
		if r.Status == http.StatusOK && r.Message.To == to && r.Message.Text != nil {
			out = append(out, r.Message.Text.Body)
		}
	}
	return out
}

// slackTexts lists what the fake Slack took for channel, in order.
func (s *serveStack) slackTexts(channel string) []string {
	return s.slack.Delivered()[channel]
}

// waitSlack waits until channel has taken n messages and returns them.
func (s *serveStack) waitSlack(tb testing.TB, channel string, n int) []string {
	tb.Helper()
	var got []string
	eventually(tb, fmt.Sprintf("%d message(s) in %s", n, channel), func() (bool, string) {
		got = s.slackTexts(channel)
		return len(got) >= n, fmt.Sprintf("delivered %q", got)
	})
	return got
}

// waitSent waits until to has been sent n text messages and returns them.
func (s *serveStack) waitSent(tb testing.TB, to string, n int) []string {
	tb.Helper()
	var got []string
	eventually(tb, fmt.Sprintf("%d message(s) to %s", n, to), func() (bool, string) {
		got = s.sent(to)
		return len(got) >= n, fmt.Sprintf("sent %q", got)
	})
	return got
}

// eventually polls cond until it holds or e2eDeadline passes.
func eventually(tb testing.TB, what string, cond func() (bool, string)) {
	tb.Helper()
	eventuallyWithin(tb, e2eDeadline, what, cond)
}

// eventuallyWithin is eventually with a deadline of its own.
func eventuallyWithin(tb testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %v waiting for %s; last seen: %s", limit, what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eView is GET /v1/conversations/{id}.
type e2eView struct {
	Conversation schemas.Conversation `json:"conversation"`
	Contact      schemas.Contact      `json:"contact"`
	Messages     []httpapi.Message    `json:"messages"`
	Notes        []httpapi.Note       `json:"notes"`
	Decisions    []schemas.Decision   `json:"decisions"`
}

func (s *serveStack) conversation(tb testing.TB, id string) e2eView {
	tb.Helper()
	code, body := s.do(tb, http.MethodGet, "/v1/conversations/"+id, e2eAdminToken, nil)
	if code != http.StatusOK {
		tb.Fatalf("GET conversation %s: %d %s", id, code, body)
	}
	var v e2eView
	if err := json.Unmarshal(body, &v); err != nil {
		tb.Fatalf("GET conversation %s: %v\n%s", id, err, body)
	}
	return v
}

func (s *serveStack) conversationIDs(tb testing.TB, token string) []string {
	tb.Helper()
	code, body := s.do(tb, http.MethodGet, "/v1/conversations", token, nil)
	if code != http.StatusOK {
		tb.Fatalf("GET /v1/conversations: %d %s", code, body)
	}
	var list struct {
		Conversations []schemas.Conversation `json:"conversations"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		tb.Fatal(err)
	}
	ids := []string{}
	for _, c := range list.Conversations {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func (s *serveStack) rulesStatus(tb testing.TB) httpapi.RulesStatus {
	tb.Helper()
	code, body := s.do(tb, http.MethodGet, "/v1/rules", e2eAdminToken, nil)
	if code != http.StatusOK {
		tb.Fatalf("GET /v1/rules: %d %s", code, body)
	}
	var rs httpapi.RulesStatus
	if err := json.Unmarshal(body, &rs); err != nil {
		tb.Fatal(err)
	}
	return rs
}

// metric reads one sample of GET /metrics: name with its labels exactly as
// exposed (`name{a="b"}`), 0 when absent.
func (s *serveStack) metric(tb testing.TB, series string) float64 {
	tb.Helper()
	code, body := s.do(tb, http.MethodGet, "/metrics", "", nil)
	if code != http.StatusOK {
		tb.Fatalf("GET /metrics: %d", code)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func (s *serveStack) waitMetric(tb testing.TB, series string, want float64) {
	tb.Helper()
	eventually(tb, fmt.Sprintf("%s = %v", series, want), func() (bool, string) {
		got := s.metric(tb, series)
		return got == want, fmt.Sprint(got)
	})
}

func waConv(waID string) string { return whatsapp.ConversationID(e2ePhoneID, waID) }

// decisionsOf lists "type/matched rules" of a view's decisions, in order.
func decisionsOf(v e2eView) []string {
	var out []string
	for _, d := range v.Decisions {
		out = append(out, d.Event.Type+"/"+strings.Join(d.Matched, ","))
	}
	return out
}

func equal(tb testing.TB, what string, got, want []string) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// faqAnswer is the example FAQ's answer to its own question q.
func faqAnswer(tb testing.TB, q string) string {
	tb.Helper()
	f, err := bot.LoadFAQ(e2eExampleFAQ)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range f.Entries() {
		if e.Question == q {
			return e.Answer
		}
	}
	tb.Fatalf("no FAQ entry %q", q)
	return ""
}

// The four seed patterns of the examples, each from a signed webhook to the
// request the fakes received.
func TestServeE2ESeedPatterns(t *testing.T) { eachStore(t, testServeE2ESeedPatterns) }

func testServeE2ESeedPatterns(t *testing.T, db string) {
	t.Run("confident answer from the built-in FAQ bot is relayed", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db}) // no bot section: faq.yaml beside the rules, as serve.go does
		s.customer(t, "447700900001", "Sam Lee", "wamid.faq1", "What are your opening hours?", e2eMonday)
		got := s.waitSent(t, "447700900001", 1)
		equal(t, "sent", got, []string{faqAnswer(t, "What are your opening hours?")})
		v := s.conversation(t, waConv("447700900001"))
		equal(t, "decisions", decisionsOf(v), []string{"message.received/ask-bot", "bot.answered/relay-bot-answer"})
		if c := v.Conversation; c.Handler != "bot" || c.BotTurns != 1 || c.Escalated {
			t.Errorf("conversation %+v", c)
		}
		if d := v.Decisions[1]; d.Event.Confidence < 0.99 || d.Event.Topic != "opening_hours" {
			t.Errorf("bot answer event %+v", d.Event)
		}
	})

	t.Run("confident answer from an HTTP bot is relayed word for word", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
		s.bot.Answer("What are your opening hours?", bot.Answer{Text: "We're open 9 to 6, Monday to Saturday.", Confidence: 0.92, Topic: "opening_hours", Resolved: true})
		s.customer(t, "447700900002", "Sam Lee", "wamid.http1", "What are your opening hours?", e2eMonday)
		equal(t, "sent", s.waitSent(t, "447700900002", 1), []string{"We're open 9 to 6, Monday to Saturday."})
		q := s.bot.Questions()
		if len(q) != 1 || q[0].Text != "What are your opening hours?" || q[0].Conversation != waConv("447700900002") || q[0].Contact.Name != "Sam Lee" {
			t.Errorf("the bot was asked %+v", q)
		}
	})

	t.Run("low confidence: the bot says it is not sure and names the teammate", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
		const q = "Can I change the delivery address on an order that already shipped?"
		s.bot.Answer(q, bot.Answer{Text: "Possibly, via the app?", Confidence: 0.41})
		s.customer(t, "447700900003", "Sam Lee", "wamid.low1", q, e2eMonday)
		equal(t, "sent", s.waitSent(t, "447700900003", 1), []string{
			"I'm not sure I have the right answer for that, so I'm bringing in Anita from our team; they'll reply within 5 minutes.",
		})
		v := s.conversation(t, waConv("447700900003"))
		equal(t, "decisions", decisionsOf(v), []string{"message.received/ask-bot", "bot.answered/low-confidence"})
		if c := v.Conversation; c.Handler != "human" || c.Assignee != "anita" || c.EscalationReason != "low_confidence" {
			t.Errorf("conversation %+v", c)
		}
	})

	t.Run("asking for someone reaches a named person at once", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
		s.customer(t, "919800000001", "Priya", "wamid.human1", "Can I speak to someone?", e2eMonday)
		equal(t, "sent", s.waitSent(t, "919800000001", 1), []string{
			"Of course. I'm bringing in Anita from our team; they'll reply within 5 minutes.",
		})
		v := s.conversation(t, waConv("919800000001"))
		equal(t, "decisions", decisionsOf(v), []string{"message.received/human-keyword"})
		if c := v.Conversation; c.Assignee != "anita" || c.EscalationReason != "keyword" || c.Team != "support" {
			t.Errorf("conversation %+v", c)
		}
		for _, a := range v.Decisions[0].Actions {
			if a.Type == "ask_bot" {
				t.Errorf("the bot was asked: %+v", a)
			}
		}
		if n := len(s.bot.Requests()); n != 0 {
			t.Errorf("the bot got %d requests", n)
		}
	})

	t.Run("refund and urgent: a Slack ping and an acknowledgement", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
		s.customer(t, "919812345678", "Arjun", "wamid.refund1", "I'd like a refund for order 1234", e2eMonday)
		s.customer(t, "919812345679", "Arjun", "wamid.urgent1", "My card was charged twice, help, it's an EMERGENCY", e2eMonday.Add(time.Second))

		equal(t, "refund acknowledgement", s.waitSent(t, "919812345678", 1), []string{
			"Thanks, I've passed your refund request to Dev from our billing team; they'll reply within 5 minutes.",
		})
		equal(t, "urgent acknowledgement", s.waitSent(t, "919812345679", 1), []string{
			"I've flagged this as urgent and I'm bringing in Anita from our team; they'll reply within 2 minutes.",
		})
		// Slack is delivered in order per channel, apart from the
		// customers' replies: the pings may come after the acknowledgements.
		equal(t, "#billing", s.waitSlack(t, "#billing", 1), []string{
			"Refund request in " + waConv("919812345678") + ": I'd like a refund for order 1234",
		})
		equal(t, "#support-urgent", s.waitSlack(t, "#support-urgent", 1), []string{
			"Urgent from Arjun: My card was charged twice, help, it's an EMERGENCY",
		})
		if other := s.slackTexts("#support"); len(other) != 0 {
			t.Errorf("#support got %q", other)
		}
		refund := s.conversation(t, waConv("919812345678")).Conversation
		if refund.Priority != "high" || refund.Team != "billing" || refund.Assignee != "dev" || !slices.Contains(refund.Tags, "refund") {
			t.Errorf("refund conversation %+v", refund)
		}
		urgent := s.conversation(t, waConv("919812345679")).Conversation
		if urgent.Priority != "urgent" || urgent.Assignee != "anita" || urgent.EscalationReason != "urgent" {
			t.Errorf("urgent conversation %+v", urgent)
		}
		if n := len(s.bot.Requests()); n != 0 {
			t.Errorf("the bot got %d requests", n)
		}
	})

	t.Run("three bot turns, then the fourth message is handed over", func(t *testing.T) {
		s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
		s.bot.Answer("My app keeps logging me out", bot.Answer{Text: "Try updating the app.", Confidence: 0.8})
		s.bot.Answer("Already did", bot.Answer{Text: "Try clearing the cache.", Confidence: 0.75})
		s.bot.Answer("Still happening", bot.Answer{Text: "Try reinstalling.", Confidence: 0.7})
		const wa = "447700900123"
		msgs := []string{"My app keeps logging me out", "Already did", "Still happening", "Nope, same thing"}
		for i, text := range msgs {
			s.customer(t, wa, "Sam Lee", fmt.Sprintf("wamid.turn%d", i+1), text, e2eMonday.Add(time.Duration(i)*time.Minute))
			s.waitSent(t, wa, i+1) // the customer reads each answer before writing again
		}
		equal(t, "sent", s.sent(wa), []string{
			"Try updating the app.",
			"Try clearing the cache.",
			"Try reinstalling.",
			"I don't seem to be solving this for you, so I'm bringing in Anita from our team; they'll reply within 5 minutes.",
		})
		v := s.conversation(t, waConv(wa))
		equal(t, "decisions", decisionsOf(v), []string{
			"message.received/ask-bot", "bot.answered/relay-bot-answer",
			"message.received/ask-bot", "bot.answered/relay-bot-answer",
			"message.received/ask-bot", "bot.answered/relay-bot-answer",
			"message.received/turn-limit",
		})
		if c := v.Conversation; c.Handler != "human" || c.EscalationReason != "turn_limit" || c.Assignee != "anita" {
			t.Errorf("conversation %+v", c)
		}
		if n := len(s.bot.Questions()); n != 3 {
			t.Errorf("the bot was asked %d times, want 3", n)
		}
	})
}

// Webhooks that fail a check are refused with the right status, and
// nothing of them is stored or sent.
func TestServeE2EWebhookRejections(t *testing.T) { eachStore(t, testServeE2EWebhookRejections) }

func testServeE2EWebhookRejections(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
	body := whatsapptest.TextWebhook(e2ePhoneID, "15550000001", "Mallory", "wamid.forged1", "Can I speak to someone?", e2eMonday)
	tampered := bytes.Replace(body, []byte("speak to someone"), []byte("speak to the boss"), 1)
	huge := whatsapptest.TextWebhook(e2ePhoneID, "15550000002", "Mallory", "wamid.huge1",
		"Can I speak to someone? "+strings.Repeat("a", whatsapp.MaxBody), e2eMonday)
	malformed := body[:len(body)/2]
	notWhatsApp := []byte(`{"object":"page","entry":[]}`)

	cases := []struct {
		name      string
		body      []byte
		signature string
		chunked   bool
		want      int
	}{
		{"signed with another secret", body, whatsapptest.Sign(body, "not_the_app_secret"), false, http.StatusUnauthorized},
		{"body changed after signing", tampered, whatsapptest.Sign(body, e2eSecret), false, http.StatusUnauthorized},
		{"no signature", body, "", false, http.StatusUnauthorized},
		{"signature not hex", body, "sha256=" + strings.Repeat("zz", 32), false, http.StatusUnauthorized},
		{"over 3 MiB with Content-Length", huge, whatsapptest.Sign(huge, e2eSecret), false, http.StatusRequestEntityTooLarge},
		{"over 3 MiB chunked", huge, whatsapptest.Sign(huge, e2eSecret), true, http.StatusRequestEntityTooLarge},
		{"malformed JSON, signed", malformed, whatsapptest.Sign(malformed, e2eSecret), false, http.StatusBadRequest},
		{"not a WhatsApp webhook, signed", notWhatsApp, whatsapptest.Sign(notWhatsApp, e2eSecret), false, http.StatusBadRequest},
	}
	for _, c := range cases {
		var r io.Reader = bytes.NewReader(c.body)
		if c.chunked {
			r = io.MultiReader(r) // hides the length: the body is sent chunked
		}
		req, err := http.NewRequest(http.MethodPost, s.URL+"/webhooks/whatsapp", r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if c.signature != "" {
			req.Header.Set(whatsapp.SignatureHeader, c.signature)
		}
		code, ans := s.send(t, req)
		if code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, ans, c.want)
		}
	}

	// Meta's handshake: the right token gets the challenge echoed, a
	// wrong one a 403.
	if code, ans := s.do(t, http.MethodGet, "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token="+e2eVerifyToken+"&hub.challenge=1158201444", "", nil); code != 200 || string(ans) != "1158201444" {
		t.Errorf("handshake: %d %q", code, ans)
	}
	if code, _ := s.do(t, http.MethodGet, "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1", "", nil); code != http.StatusForbidden {
		t.Errorf("handshake with a wrong token: %d", code)
	}

	// A good webhook after them all: once its answer is out, anything the
	// refused ones had let through would have been evaluated before it.
	s.customer(t, "15550000099", "Grace", "wamid.good1", "Can I speak to someone?", e2eMonday.Add(time.Minute))
	s.waitSent(t, "15550000099", 1)

	equal(t, "conversations", s.conversationIDs(t, e2eAdminToken), []string{waConv("15550000099")})
	for _, r := range s.wa.Requests() {
		if r.Message.To != "15550000099" {
			t.Errorf("the Cloud API fake got a request for %s: %s", r.Message.To, r.Raw)
		}
	}
	if reqs := s.slack.Requests(); len(reqs) != 0 {
		t.Errorf("the Slack fake got %d requests", len(reqs))
	}
	if reqs := s.bot.Requests(); len(reqs) != 0 {
		t.Errorf("the bot got %d requests", len(reqs))
	}
	for result, want := range map[string]float64{"bad_signature": 4, "too_large": 2, "malformed": 2, "accepted": 1} {
		if got := s.metric(t, `triage_webhook_payloads_total{result="`+result+`"}`); got != want {
			t.Errorf("triage_webhook_payloads_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// Meta delivers a webhook twice: one decision, one answer.
func TestServeE2EDuplicateDelivery(t *testing.T) { eachStore(t, testServeE2EDuplicateDelivery) }

func testServeE2EDuplicateDelivery(t *testing.T, db string) {
	payload := whatsapptest.Fixture("meta_docs_inbound_text.json")
	// The fixture's README gives this test vector: the signature is over
	// the exact bytes.
	if got := whatsapptest.Sign(payload, e2eSecret); got != "sha256=1c041e1c07f50386213ac582d2e17d24d70f1ed42949a6e5a5607057b805b5fc" {
		t.Fatalf("signature of the fixture: %s", got)
	}
	at := time.Unix(1749416383, 0).UTC() // the fixture's timestamp
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake", Clock: at})
	s.bot.Answer("Does it come in another color?", bot.Answer{Text: "It comes in black, navy and forest green.", Confidence: 0.9})
	s.bot.Answer("Thanks!", bot.Answer{Text: "You're welcome!", Confidence: 0.95})
	const wa = "16505551234"

	s.deliver(t, payload)
	s.deliver(t, payload) // Meta's redelivery: the same bytes, the same message id
	s.waitMetric(t, "triage_duplicate_events_total", 1)
	// A later message of the same conversation: its answer is delivered
	// after anything the duplicate could have caused.
	s.customer(t, wa, "Sheena Nelson", "wamid.after-dup", "Thanks!", at.Add(time.Minute))
	s.waitSent(t, wa, 2)

	equal(t, "sent", s.sent(wa), []string{"It comes in black, navy and forest green.", "You're welcome!"})
	v := s.conversation(t, waConv(wa))
	var received []string
	for _, d := range v.Decisions {
		if d.Duplicate {
			t.Errorf("a duplicate is in the audit log: %+v", d.Event)
		}
		if d.Event.Type == schemas.MessageReceived {
			received = append(received, d.Event.ID)
		}
	}
	equal(t, "message decisions", received, []string{"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "wamid.after-dup"})
	if v.Conversation.Messages != 2 || v.Contact.Name != "Sheena Nelson" {
		t.Errorf("conversation %+v, contact %+v", v.Conversation, v.Contact)
	}
	if n := len(s.bot.Questions()); n != 2 {
		t.Errorf("the bot was asked %d times, want 2", n)
	}
}

// The Cloud API fails for a while (server errors, then rate limits with
// Retry-After): every message still arrives, once, in order per customer.
func TestServeE2EWhatsAppOutage(t *testing.T) { eachStore(t, testServeE2EWhatsAppOutage) }

func testServeE2EWhatsAppOutage(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake",
		Retry: server.RetryPolicy{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 50}})
	s.wa.FailNext(3, whatsapptest.MetaError(whatsapptest.CodeServiceError))
	s.wa.FailNext(1, whatsapptest.Reply{Status: http.StatusBadGateway, Body: []byte("<html>502 Bad Gateway</html>")})
	s.wa.FailNext(2, whatsapptest.MetaError(whatsapptest.CodeRateLimit).WithRetryAfter("1"))
	const failures = 6

	type customer struct{ wa, name, agent string }
	customers := []customer{{"919800000011", "Priya", "Anita"}, {"919800000012", "Rahul", "Ben"}}
	msgs := []string{"Can I speak to someone?", "hello?? agent!!", "agent, are you there?"}
	for i, text := range msgs {
		for _, c := range customers {
			s.customer(t, c.wa, c.name, fmt.Sprintf("wamid.%s.%d", c.wa, i), text, e2eMonday.Add(time.Duration(i)*time.Minute))
		}
	}
	for _, c := range customers {
		equal(t, "sent to "+c.name, s.waitSent(t, c.wa, 3), []string{
			"Of course. I'm bringing in " + c.agent + " from our team; they'll reply within 5 minutes.",
			c.agent + " has your conversation and will reply within 4 minutes.",
			c.agent + " has your conversation and will reply within 3 minutes.",
		})
	}

	reqs := s.wa.Requests()
	failed := 0
	for i, r := range reqs {
		if r.Status == http.StatusOK {
			continue
		}
		failed++
		if r.Status == http.StatusBadRequest { // 130429, Retry-After: 1
			for _, next := range reqs[i+1:] {
				if next.Message.To == r.Message.To {
					if gap := next.Time.Sub(r.Time); gap < 900*time.Millisecond {
						t.Errorf("retried %v after a Retry-After of 1 s", gap)
					}
					break
				}
			}
		}
	}
	if failed != failures || len(reqs) != failures+6 {
		t.Errorf("%d requests, %d failed; want %d and %d", len(reqs), failed, failures+6, failures)
	}
	if got := s.metric(t, `triage_outbound_deliveries_total{connector="whatsapp",result="retry"}`); got != failures {
		t.Errorf("retries counted: %v, want %d", got, failures)
	}
	if got := s.metric(t, `triage_outbound_deliveries_total{connector="whatsapp",result="dead"}`); got != 0 {
		t.Errorf("dead deliveries: %v", got)
	}
	// The audit log shows them delivered, too, once each result is
	// stored (results are written a few ms after the send, together).
	eventually(t, "three messages sent in the audit log", func() (bool, string) {
		v := s.conversation(t, waConv(customers[0].wa))
		var out []string
		for _, m := range v.Messages {
			if m.From == "triage" {
				out = append(out, m.Status)
			}
		}
		return slices.Equal(out, []string{"sent", "sent", "sent"}), fmt.Sprint(out)
	})
}

// Slack fails for a while (500s, then a 429 with Retry-After): every ping
// still reaches the channel once it recovers, in the order the decisions
// made them, no sooner after the 429 than Slack asked; the customers'
// acknowledgements do not wait for it.
func TestServeE2ESlackOutage(t *testing.T) { eachStore(t, testServeE2ESlackOutage) }

func testServeE2ESlackOutage(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake", SlackInterval: time.Millisecond,
		Retry: server.RetryPolicy{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 50}})
	s.slack.ScriptChannel("#support-urgent",
		slacktest.WebhookError(http.StatusInternalServerError, "internal_error"),
		slacktest.WebhookError(http.StatusBadGateway, "bad gateway"),
		slacktest.RateLimited(time.Second))
	const customers = 4
	var want []string
	for i := range customers {
		wa := fmt.Sprintf("91980002%04d", i)
		text := fmt.Sprintf("my payment page is broken, urgent %d", i)
		s.customer(t, wa, "Asha", fmt.Sprintf("wamid.slack.%d", i), text, e2eMonday.Add(time.Duration(i)*time.Second))
		want = append(want, "Urgent from Asha: "+text)
	}
	for i := range customers {
		s.waitSent(t, fmt.Sprintf("91980002%04d", i), 1)
	}
	eventually(t, "every urgent ping", func() (bool, string) {
		got := s.slackTexts("#support-urgent")
		return len(got) == customers, fmt.Sprintf("delivered %q", got)
	})
	equal(t, "pings, in order", s.slackTexts("#support-urgent"), want)
	reqs := s.slack.Requests()
	failed := 0
	for i, r := range reqs {
		if r.Delivered {
			continue
		}
		failed++
		if r.Status == http.StatusTooManyRequests && i+1 < len(reqs) {
			if gap := reqs[i+1].At.Sub(r.At); gap < 900*time.Millisecond {
				t.Errorf("posted again %v after a Retry-After of 1 s", gap)
			}
		}
	}
	if failed != 3 {
		t.Errorf("%d failed posts, want the 3 scripted", failed)
	}
	if got := s.metric(t, `triage_outbound_deliveries_total{connector="slack",result="retry"}`); got != 3 {
		t.Errorf("slack retries counted: %v, want 3", got)
	}
}

// A message WhatsApp refuses for good (131026, undeliverable) is given
// up at once, not retried; it is counted, listed by GET
// /v1/outbound/dead for supervisors, and does not hold up the customer's
// next message.
func TestServeE2EDeadDelivery(t *testing.T) { eachStore(t, testServeE2EDeadDelivery) }

func testServeE2EDeadDelivery(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake",
		Retry: server.RetryPolicy{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond}})
	s.wa.FailNext(1, whatsapptest.MetaError(whatsapptest.CodeUndeliverable))
	s.customer(t, "919800000071", "Priya", "wamid.dead.1", "Can I speak to someone?", e2eMonday)
	s.waitMetric(t, `triage_outbound_deliveries_total{connector="whatsapp",result="dead"}`, 1)
	// The attempt is counted when it ends, the result listed once stored.
	var list httpapi.DeadList
	eventually(t, "the dead list", func() (bool, string) {
		code, body := s.do(t, http.MethodGet, "/v1/outbound/dead", e2eSupervisorToken, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/outbound/dead: %d %s", code, body)
		}
		list = httpapi.DeadList{}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Dead) > 0, string(body)
	})
	if len(list.Dead) != 1 || list.Dead[0].Key != "wamid.dead.1/human-keyword/2" || list.Dead[0].Attempts != 1 ||
		list.Dead[0].Conversation != waConv("919800000071") || !strings.Contains(list.Dead[0].Error, "131026") {
		t.Fatalf("dead list: %+v", list.Dead)
	}
	if code, _ := s.do(t, http.MethodGet, "/v1/outbound/dead", e2eAgentToken, nil); code != http.StatusForbidden {
		t.Errorf("an agent read the dead list: %d", code)
	}
	eventually(t, "the dead gauge", func() (bool, string) {
		v := s.metric(t, `triage_outbound_dead`)
		return v == 1, fmt.Sprint(v)
	})
	// The next message still goes out.
	s.customer(t, "919800000071", "Priya", "wamid.dead.2", "hello?? is an agent there?", e2eMonday.Add(time.Minute))
	s.waitSent(t, "919800000071", 1)
}

// A customer who writes again while the bot's earlier work is still
// queued gets an answer to each message, not the last one answered twice.
func TestServeE2EEachMessageGetsItsOwnAnswer(t *testing.T) {
	eachStore(t, testServeE2EEachMessageGetsItsOwnAnswer)
}

func testServeE2EEachMessageGetsItsOwnAnswer(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake",
		Retry: server.RetryPolicy{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 20000}})
	qs := []string{"What are your opening hours?", "Do you ship to Canada?", "Can I pay with PayPal?"}
	as := []string{"9 to 6, Monday to Saturday.", "Yes, in 5 to 10 working days.", "Yes, PayPal works."}
	for i := range qs {
		s.bot.Answer(qs[i], bot.Answer{Text: as[i], Confidence: 0.9})
	}
	const wa = "447700900301"
	// The Cloud API is down until the test says otherwise: the answer to
	// the first question waits in the conversation's queue, and the
	// questions written meanwhile queue behind it.
	s.wa.FailNext(10000, whatsapptest.MetaError(whatsapptest.CodeServiceError))
	s.customer(t, wa, "Sam", "wamid.own1", qs[0], e2eMonday)
	eventually(t, "the first answer to be tried", func() (bool, string) {
		return len(s.wa.Requests()) > 0, "no request yet"
	})
	s.customer(t, wa, "Sam", "wamid.own2", qs[1], e2eMonday.Add(time.Second))
	s.customer(t, wa, "Sam", "wamid.own3", qs[2], e2eMonday.Add(2*time.Second))
	eventually(t, "the later questions to be evaluated", func() (bool, string) {
		v := s.conversation(t, waConv(wa))
		return v.Conversation.Messages == 3, strings.Join(decisionsOf(v), " ")
	})
	s.wa.Reset() // the outage ends

	equal(t, "sent", s.waitSent(t, wa, 3), as)
	var asked []string
	for _, q := range s.bot.Questions() {
		asked = append(asked, q.Text)
		for _, h := range q.History {
			if h.Text == q.Text {
				t.Errorf("the history of %q holds the question itself: %+v", q.Text, q.History)
			}
		}
	}
	equal(t, "the bot was asked", asked, qs)
}

// Slack's pacing (a second between posts to a channel, longer after a
// 429) must not hold up other customers' messages: more urgent pings wait
// for #support-urgent than the dispatcher has worker slots, and a FAQ
// answer to someone else still goes out at once.
func TestServeE2ESlackPacingDoesNotHoldUpReplies(t *testing.T) {
	eachStore(t, testServeE2ESlackPacingDoesNotHoldUpReplies)
}

func testServeE2ESlackPacingDoesNotHoldUpReplies(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "faq", SlackInterval: time.Millisecond,
		Retry: server.RetryPolicy{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond}})
	// The first ping is told to come back in a second: the channel's
	// later posts wait for it.
	s.slack.ScriptChannel("#support-urgent", slacktest.RateLimited(time.Second))
	const urgent = 12 // the outbox has 8 worker slots
	for i := range urgent {
		s.customer(t, fmt.Sprintf("91980001%04d", i), "Asha", fmt.Sprintf("wamid.urgent.%d", i), "my account is broken, this is urgent", e2eMonday)
	}
	s.customer(t, "447700900401", "Sam", "wamid.faq.hol", "What are your opening hours?", e2eMonday)
	equal(t, "FAQ answer", s.waitSent(t, "447700900401", 1), []string{faqAnswer(t, "What are your opening hours?")})
	if n := len(s.slackTexts("#support-urgent")); n != 0 {
		t.Errorf("the FAQ answer went out only after %d urgent pings: Slack's pacing held it up", n)
	}
	// Every urgent customer gets the acknowledgement without waiting for
	// the channel (Slack is ordered per channel, not per customer), and
	// every ping still reaches the channel once its pace allows.
	for i := range urgent {
		got := s.waitSent(t, fmt.Sprintf("91980001%04d", i), 1)
		if !strings.HasPrefix(got[0], "I've flagged this as urgent and I'm bringing in ") {
			t.Errorf("urgent customer %d got %q", i, got)
		}
	}
	eventually(t, "every urgent ping", func() (bool, string) {
		n := len(s.slackTexts("#support-urgent"))
		return n == urgent, fmt.Sprintf("%d urgent pings delivered, want %d", n, urgent)
	})
}

// /v1/events with each role, and what each role may read.
func TestServeE2EEventsAPIAndRoles(t *testing.T) { eachStore(t, testServeE2EEventsAPIAndRoles) }

func testServeE2EEventsAPIAndRoles(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
	at := e2eMonday.Format(time.RFC3339)
	post := func(token, body string) (int, string) {
		code, ans := s.do(t, http.MethodPost, "/v1/events", token, []byte(body))
		return code, strings.TrimSpace(string(ans))
	}

	// An admin posts a normalized event.
	if code, ans := post(e2eAdminToken, `{"id":"api-m1","type":"message.received","at":"`+at+`","conversation":"api-c1",
		"contact":{"id":"919800000021","name":"Priya","language":"en"},"text":"agent please"}`); code != http.StatusAccepted || ans != `{"accepted":1}` {
		t.Fatalf("admin POST /v1/events: %d %s", code, ans)
	}
	equal(t, "sent to Priya", s.waitSent(t, "919800000021", 1), []string{"Of course. I'm bringing in Anita from our team; they'll reply within 5 minutes."})
	eventually(t, "the daemon to record the handoff as sent", func() (bool, string) {
		v := s.conversation(t, "api-c1")
		return len(v.Messages) == 2, fmt.Sprintf("%+v", v.Messages)
	})
	// A service (the inbox) posts a batch: another customer, and Anita's
	// reply to the first, written after the handoff reached Priya.
	later := e2eMonday.Add(2 * time.Minute).Format(time.RFC3339)
	if code, ans := post(e2eServiceToken, `[
		{"id":"api-m2","type":"message.received","at":"`+at+`","conversation":"api-c2","contact":{"id":"919800000022","name":"Rahul"},"text":"Can I speak to someone?"},
		{"id":"api-r1","type":"agent.replied","at":"`+later+`","conversation":"api-c1","agent":"anita","text":"Hi Priya, Anita here."}]`); code != http.StatusAccepted || ans != `{"accepted":2}` {
		t.Fatalf("service POST /v1/events: %d %s", code, ans)
	}
	equal(t, "sent to Rahul", s.waitSent(t, "919800000022", 1), []string{"Of course. I'm bringing in Ben from our team; they'll reply within 5 minutes."})
	eventually(t, "the agent's reply to be evaluated", func() (bool, string) {
		v := s.conversation(t, "api-c1")
		return len(v.Decisions) == 2, strings.Join(decisionsOf(v), " ")
	})

	// Refused calls: 401 without or with an unknown token, 403 for a role
	// that may not; none of them stores anything.
	refused := `{"id":"api-x1","type":"message.received","at":"` + at + `","conversation":"api-c9","contact":{"id":"919800000029"},"text":"agent"}`
	for _, c := range []struct {
		name, token string
		want        int
	}{{"agent", e2eAgentToken, 403}, {"supervisor", e2eSupervisorToken, 403}, {"no token", "", 401}, {"unknown token", "not-a-token", 401}} {
		if code, ans := post(c.token, refused); code != c.want {
			t.Errorf("%s POST /v1/events: %d %s, want %d", c.name, code, ans, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/events", strings.NewReader(refused))
	req.Header.Set("Authorization", "Basic "+e2eAdminToken)
	if code, _ := s.send(t, req); code != http.StatusUnauthorized {
		t.Errorf("a token sent as Basic: %d, want 401", code)
	}
	for _, body := range []string{
		`{"id":"api-bad1","at":"` + at + `","conversation":"api-c9","text":"no type"}`,
		`{"id":"api-bad2","type":"message.received","at":"` + at + `","conversation":"api-c9","txt":"misspelt"}`,
		`{"id":"api-bad3","type":"bot.answered","at":"` + at + `","conversation":"api-c9","confidence":1.5}`,
	} {
		if code, ans := post(e2eAdminToken, body); code != http.StatusBadRequest {
			t.Errorf("invalid event %s: %d %s, want 400", body, code, ans)
		}
	}
	if code, _ := s.do(t, http.MethodGet, "/v1/conversations/api-c9", e2eAdminToken, nil); code != http.StatusNotFound {
		t.Errorf("a refused event was stored: GET api-c9 answers %d", code)
	}
	equal(t, "conversations", s.conversationIDs(t, e2eAdminToken), []string{"api-c1", "api-c2"})

	// An agent reads what is assigned to it, nothing else, and may not
	// read or reload the rules; a service reads no conversations.
	for _, c := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"agent reads its own", "GET", "/v1/conversations/api-c1", e2eAgentToken, 200},
		{"agent reads Ben's", "GET", "/v1/conversations/api-c2", e2eAgentToken, 403},
		{"agent reads the rules", "GET", "/v1/rules", e2eAgentToken, 403},
		{"agent reloads", "POST", "/-/reload", e2eAgentToken, 403},
		{"service lists", "GET", "/v1/conversations", e2eServiceToken, 403},
		{"service reads the rules", "GET", "/v1/rules", e2eServiceToken, 403},
		{"supervisor reads Ben's", "GET", "/v1/conversations/api-c2", e2eSupervisorToken, 200},
		{"supervisor reads the rules", "GET", "/v1/rules", e2eSupervisorToken, 200},
		{"supervisor reloads", "POST", "/-/reload", e2eSupervisorToken, 403},
		{"nobody lists", "GET", "/v1/conversations", "", 401},
		{"nobody reloads", "POST", "/-/reload", "", 401},
	} {
		if code, ans := s.do(t, c.method, c.path, c.token, nil); code != c.want {
			t.Errorf("%s (%s %s): %d %s, want %d", c.name, c.method, c.path, code, ans, c.want)
		}
	}
	equal(t, "the agent's list", s.conversationIDs(t, e2eAgentToken), []string{"api-c1"})

	// The conversation's view: state, messages both ways, and decisions
	// recording the running rule set's version.
	version := s.rulesStatus(t).Version
	if !strings.HasPrefix(version, "sha256:") || len(version) != len("sha256:")+12 {
		t.Errorf("rule set version %q", version)
	}
	v := s.conversation(t, "api-c1")
	equal(t, "decisions", decisionsOf(v), []string{"message.received/human-keyword", "agent.replied/"})
	for _, d := range v.Decisions {
		if d.RuleSet != version {
			t.Errorf("decision for %s records rule set %q, want %q", d.Event.ID, d.RuleSet, version)
		}
	}
	var from []string
	for _, m := range v.Messages {
		from = append(from, m.From+": "+m.Text)
	}
	equal(t, "messages", from, []string{
		"customer: agent please",
		"triage: Of course. I'm bringing in Anita from our team; they'll reply within 5 minutes.",
		"agent:anita: Hi Priya, Anita here.",
	})
	if c := v.Conversation; c.Handler != "human" || c.Assignee != "anita" || c.FirstResponseAt.IsZero() {
		t.Errorf("conversation %+v", c)
	}
}

// Deadlines that pass between two events fire before the later event, and
// the audit log lists them in that order (newest last).
func TestServeE2EDecisionsInEvaluationOrder(t *testing.T) {
	eachStore(t, testServeE2EDecisionsInEvaluationOrder)
}

func testServeE2EDecisionsInEvaluationOrder(t *testing.T, db string) {
	s := newServeStack(t, stackOptions{Database: db, Bot: "fake"})
	const wa = "919800000031"
	s.customer(t, wa, "Meera", "wamid.sla1", "agent please", e2eMonday)
	s.waitSent(t, wa, 1)
	// Ten minutes later by the events' clock (the daemon's wall clock is
	// still at the first message): the warning (3 min) and the breach
	// (5 min) of the first response are due before this message.
	s.customer(t, wa, "Meera", "wamid.sla2", "hello?", e2eMonday.Add(10*time.Minute))
	s.waitSlack(t, "#support-leads", 2)
	v := s.conversation(t, waConv(wa))
	equal(t, "decisions", decisionsOf(v), []string{
		"message.received/human-keyword", "sla.warning/sla-warning", "sla.breached/sla-breached", "message.received/",
	})
	for i := 1; i < len(v.Decisions); i++ {
		if v.Decisions[i].Event.At.Before(v.Decisions[i-1].Event.At) {
			t.Errorf("decision %d (%s at %v) is listed after a later one (%s at %v)", i,
				v.Decisions[i].Event.Type, v.Decisions[i].Event.At, v.Decisions[i-1].Event.Type, v.Decisions[i-1].Event.At)
		}
	}
	equal(t, "#support-leads", s.slackTexts("#support-leads"), []string{
		"first_response for " + waConv(wa) + " (standard) is due at 2026-01-05T05:05:00Z; assigned to Anita Rao.",
		"SLA breached: first_response for " + waConv(wa) + " (standard), assigned to Anita Rao.",
	})
}

// A broken rule edit is refused by POST /-/reload and the last good set
// keeps serving; the fixed edit is taken.
func TestServeE2EReload(t *testing.T) { eachStore(t, testServeE2EReload) }

// copyExampleRules copies examples/rules into a directory of tb's own, to
// edit.
func copyExampleRules(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	files, err := filepath.Glob(filepath.Join(e2eExampleRules, "*.yaml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("example rules: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		writeFile(tb, filepath.Join(dir, filepath.Base(f)), b)
	}
	return dir
}

func testServeE2EReload(t *testing.T, db string) {
	dir := copyExampleRules(t)
	s := newServeStack(t, stackOptions{Database: db, Rules: dir, Bot: "fake", Watch: true})
	s.bot.Default(bot.Answer{Text: "Maybe try restarting it.", Confidence: 0.7})
	v1 := s.rulesStatus(t)
	if !v1.OK || v1.Rules == 0 {
		t.Fatalf("rules at start: %+v", v1)
	}

	// Break bot.yaml: a type mistake the checker catches at load time.
	botPath := filepath.Join(dir, "bot.yaml")
	good, _ := os.ReadFile(botPath)
	broken := bytes.Replace(good, []byte("event.confidence < params.confidence_threshold"), []byte(`event.confidence < "0.6"`), 1)
	if bytes.Equal(good, broken) {
		t.Fatal("bot.yaml no longer has the condition this test breaks")
	}
	writeFile(t, botPath, broken)
	code, body := s.do(t, http.MethodPost, "/-/reload", e2eAdminToken, nil)
	var failure httpapi.ReloadFailure
	if err := json.Unmarshal(body, &failure); err != nil || code != http.StatusUnprocessableEntity {
		t.Fatalf("reload of a broken set: %d %s (%v)", code, body, err)
	}
	if failure.Version != v1.Version || failure.OK || failure.Error == "" || len(failure.Problems) == 0 || !strings.Contains(failure.Problems[0], "bot.yaml") {
		t.Errorf("reload failure %+v", failure)
	}
	if st := s.rulesStatus(t); st.Version != v1.Version || st.OK || st.LastError == "" {
		t.Errorf("GET /v1/rules after a rejected reload: %+v", st)
	}
	if got := s.metric(t, "triage_rules_last_reload_successful"); got != 0 {
		t.Errorf("triage_rules_last_reload_successful = %v after a rejected reload", got)
	}
	// The old set still serves: 0.7 clears its threshold of 0.6.
	s.customer(t, "447700900201", "Sam", "wamid.reload1", "Is it waterproof?", e2eMonday)
	equal(t, "answer under the old set", s.waitSent(t, "447700900201", 1), []string{"Maybe try restarting it."})
	for _, d := range s.conversation(t, waConv("447700900201")).Decisions {
		if d.RuleSet != v1.Version {
			t.Errorf("decision for %s under %s, want the old %s", d.Event.Type, d.RuleSet, v1.Version)
		}
	}

	// Fix it, and raise the threshold to 0.75 while at it.
	writeFile(t, botPath, good)
	params, _ := os.ReadFile(filepath.Join(dir, "params.yaml"))
	raised := bytes.Replace(params, []byte("confidence_threshold: 0.6"), []byte("confidence_threshold: 0.75"), 1)
	if bytes.Equal(params, raised) {
		t.Fatal("params.yaml no longer has confidence_threshold: 0.6")
	}
	writeFile(t, filepath.Join(dir, "params.yaml"), raised)
	code, body = s.do(t, http.MethodPost, "/-/reload", e2eAdminToken, nil)
	var ok httpapi.RulesStatus
	if err := json.Unmarshal(body, &ok); err != nil || code != http.StatusOK {
		t.Fatalf("reload of the fixed set: %d %s (%v)", code, body, err)
	}
	v2 := s.rulesStatus(t)
	if ok.Version != v2.Version || v2.Version == v1.Version || !v2.OK || v2.LastError != "" || len(v2.Problems) != 0 {
		t.Errorf("after the fix: POST answered %+v, GET /v1/rules %+v (old version %s)", ok, v2, v1.Version)
	}
	if got := s.metric(t, "triage_rules_last_reload_successful"); got != 1 {
		t.Errorf("triage_rules_last_reload_successful = %v after a good reload", got)
	}
	if got := s.metric(t, `triage_rules_info{version="`+v2.Version+`"}`); got != 1 {
		t.Errorf("triage_rules_info does not show %s", v2.Version)
	}
	// The new set serves: 0.7 is now below the threshold.
	s.customer(t, "447700900202", "Sam", "wamid.reload2", "Is it waterproof?", e2eMonday.Add(time.Minute))
	equal(t, "answer under the new set", s.waitSent(t, "447700900202", 1), []string{
		"I'm not sure I have the right answer for that, so I'm bringing in Anita from our team; they'll reply within 5 minutes.",
	})
	for _, d := range s.conversation(t, waConv("447700900202")).Decisions {
		if d.RuleSet != v2.Version {
			t.Errorf("decision for %s under %s, want the new %s", d.Event.Type, d.RuleSet, v2.Version)
		}
	}
}

// writeFile replaces path's contents in one rename, as editors do, so the
// watcher never reads half a file.
func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Rule edits while traffic flows: clients post signed webhooks without
// pause while the rule directory is edited the way editors save (a new
// file renamed over the old): a threshold raised, then a broken edit,
// then the fix. Every acknowledged event has exactly one decision, made
// on a whole rule set (the old or the new, never the broken one), every
// customer one reply, and what the new threshold decides, it decides for
// every event evaluated after the reload was reported.
func TestServeE2EReloadUnderLoad(t *testing.T) { eachStore(t, testServeE2EReloadUnderLoad) }

func testServeE2EReloadUnderLoad(t *testing.T, db string) {
	dir := copyExampleRules(t)
	s := newServeStack(t, stackOptions{Database: db, Rules: dir, Bot: "fake", Watch: true})
	s.bot.Default(bot.Answer{Text: "It is waterproof to 50 m.", Confidence: 0.7})
	v1 := s.rulesStatus(t).Version

	// saveAs writes path the way vim and most editors save: a new file,
	// renamed over the old one.
	saveAs := func(path string, data []byte) {
		tmp := filepath.Join(dir, ".save-"+filepath.Base(path))
		writeFile(t, tmp, data)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}

	type post struct {
		wa, id string
		after  bool // posted after the new set was reported running
	}
	var (
		mu      sync.Mutex
		posts   []post
		stop    = make(chan struct{})
		errs    = make(chan error, 8)
		clients sync.WaitGroup
		newSet  atomic.Bool
		n       atomic.Int64
	)
	for c := range 4 {
		clients.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wa := fmt.Sprintf("4477009%02d%03d", c, i)
				id := fmt.Sprintf("wamid.load.%d.%d", c, i)
				after := newSet.Load()
				body := whatsapptest.TextWebhook(e2ePhoneID, wa, "Sam", id, "Is it waterproof?", e2eMonday.Add(time.Duration(n.Add(1))*time.Millisecond))
				code, ans := s.postWebhook(t, body, whatsapptest.Sign(body, e2eSecret))
				if code != http.StatusOK {
					errs <- fmt.Errorf("webhook %s: %d %s", id, code, ans)
					return
				}
				mu.Lock()
				posts = append(posts, post{wa: wa, id: id, after: after})
				mu.Unlock()
			}
		})
	}
	waitPosts := func(k int64) {
		eventually(t, fmt.Sprintf("%d more webhooks", k), func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return int64(len(posts)) >= k, fmt.Sprint(len(posts))
		})
	}
	waitPosts(40)

	// Raise the threshold: 0.7 no longer clears it, so the bot's answers
	// escalate.
	params, _ := os.ReadFile(filepath.Join(dir, "params.yaml"))
	raised := bytes.Replace(params, []byte("confidence_threshold: 0.6"), []byte("confidence_threshold: 0.75"), 1)
	saveAs(filepath.Join(dir, "params.yaml"), raised)
	var v2 string
	eventually(t, "the watcher to load the raised threshold", func() (bool, string) {
		st := s.rulesStatus(t)
		v2 = st.Version
		return st.OK && st.Version != v1, st.Version
	})
	newSet.Store(true)
	mu.Lock()
	k := int64(len(posts))
	mu.Unlock()
	waitPosts(k + 40)

	// A broken edit: rejected, the raised set keeps serving.
	botPath := filepath.Join(dir, "bot.yaml")
	good, _ := os.ReadFile(botPath)
	saveAs(botPath, bytes.Replace(good, []byte("event.confidence < params.confidence_threshold"), []byte(`event.confidence < "0.6"`), 1))
	eventually(t, "the broken edit to be rejected", func() (bool, string) {
		st := s.rulesStatus(t)
		return !st.OK && st.Version == v2, fmt.Sprintf("%+v", st)
	})
	mu.Lock()
	k = int64(len(posts))
	mu.Unlock()
	waitPosts(k + 40)
	saveAs(botPath, good)
	eventually(t, "the fix to be taken", func() (bool, string) {
		st := s.rulesStatus(t)
		return st.OK && st.Version == v2, fmt.Sprintf("%+v", st)
	})
	close(stop)
	clients.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	after := 0
	for _, p := range posts {
		texts := s.waitSent(t, p.wa, 1)
		v := s.conversation(t, waConv(p.wa))
		var msg, ans []schemas.Decision
		for _, d := range v.Decisions {
			switch {
			case d.Event.ID == p.id:
				msg = append(msg, d)
			case d.Event.Type == schemas.BotAnswered:
				ans = append(ans, d)
			}
			if d.RuleSet != v1 && d.RuleSet != v2 {
				t.Errorf("%s: a decision on rule set %s, neither %s nor %s", p.id, d.RuleSet, v1, v2)
			}
		}
		if len(msg) != 1 || len(ans) != 1 || len(texts) != 1 {
			t.Fatalf("%s: %d decisions of the message, %d of the bot's answer, replies %q; want one each", p.id, len(msg), len(ans), texts)
		}
		escalated := len(ans[0].Matched) > 0 && ans[0].Matched[0] == "low-confidence"
		if escalated != (ans[0].RuleSet == v2) {
			t.Errorf("%s: the bot's answer on %s matched %v", p.id, ans[0].RuleSet, ans[0].Matched)
		}
		if p.after {
			after++
			if msg[0].RuleSet != v2 || ans[0].RuleSet != v2 {
				t.Errorf("%s, posted after the reload was reported: decided on %s, %s", p.id, msg[0].RuleSet, ans[0].RuleSet)
			}
		}
	}
	if after < 80 || len(posts)-after < 40 {
		t.Errorf("%d webhooks before the new set, %d after: the edits did not happen under load", len(posts)-after, after)
	}
	t.Logf("%d webhooks, %d after the threshold was raised, no decision on the broken set", len(posts), after)
}
