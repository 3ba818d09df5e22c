package main

// Real-process tests of `triage serve --database`: the triage binary is
// built, started with a configuration file on a fresh PostgreSQL schema,
// and driven over HTTP like a deployment is. TestServeCrash kills it with
// SIGKILL in the middle of a stream of signed webhooks and restarts it;
// TestServeReplicas runs three of them on one database and hits the same
// conversations through all of them at once. What they promise is then
// read back from the database itself and from the fakes' recorded
// requests. Every wait is bounded by durableDeadline, a guard against
// hanging, never an assertion about speed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
	"github.com/triage-dev/triage/connectors/slack/slacktest"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
	"github.com/triage-dev/triage/schemas"
)

// durableDeadline bounds every wait of these tests.
const durableDeadline = 60 * time.Second

// buildTriage builds the triage binary, with the go command that runs the
// tests, into a directory removed when t ends.
func buildTriage(t *testing.T) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		p, lerr := exec.LookPath("go")
		if lerr != nil {
			t.Fatalf("no go command to build triage with: %v; %v", err, lerr)
		}
		goCmd = p
	}
	bin := filepath.Join(t.TempDir(), "triage")
	out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveProcess is one running `triage serve`.
type serveProcess struct {
	name string
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and its output is copied
	err  error         // how it exited, once done is closed
}

// startServe starts `bin serve --config config`, its output appended to
// logs, and kills it when t ends. addr is the listen address the
// configuration gives.
func startServe(t *testing.T, name, bin, config, addr string, logs *syncBuffer) *serveProcess {
	t.Helper()
	fmt.Fprintf(logs, "===== %s: %s serve --config %s (started %s)\n", name, bin, config, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, "serve", "--config", config)
	// The flag's environment variable would override the configuration's
	// database.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIAGE_DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &serveProcess{name: name, addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(logs, "===== %s exited: %v\n", name, p.err)
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *serveProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *serveProcess) url(path string) string { return "http://" + p.addr + path }

// waitReady waits until GET /readyz answers 200.
func (p *serveProcess) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	eventuallyWithin(t, durableDeadline, p.name+" to be ready", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v", p.name, p.err)
		default:
		}
		resp, err := client.Get(p.url("/readyz"))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
	})
}

// openPool connects the test itself to the daemons' schema.
func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	// Through the store, which connects as the daemon does (its URL's
	// settings applied after connecting, as PgBouncer needs).
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s.Pool()
}

// countBy runs a query of (text, count) rows into a map.
func countBy(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func queryInt(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// outboxRow is a row of the outbox table.
type outboxRow struct {
	id                            int64
	conv, key, kind, channel, txt string
	result                        string
	attempts                      int
}

func readOutbox(t *testing.T, pool *pgxpool.Pool) []outboxRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, conversation_id, key, kind,
		coalesce(params->>'slack', ''), coalesce(params->>'text', ''), result, attempts FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.id, &r.conv, &r.key, &r.kind, &r.channel, &r.txt, &r.result, &r.attempts); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkOrder checks what a receiver got (got, in arrival order) against
// what was queued for it (want, in outbox order): every queued item
// arrived at least once, nothing else arrived, and the position in want
// never goes back (a redelivery after a crash may repeat an item, never
// overtake it). It returns how many arrivals were repeats.
func checkOrder(t *testing.T, who string, want, got []string) (repeats int) {
	t.Helper()
	index := make(map[string]int, len(want))
	for i, k := range want {
		if _, dup := index[k]; dup {
			t.Fatalf("%s: %q is queued twice, so arrivals cannot be told apart (the test's traffic must keep them unique)", who, k)
		}
		index[k] = i
	}
	seen := map[string]bool{}
	last := -1
	for n, k := range got {
		i, ok := index[k]
		if !ok {
			t.Errorf("%s: arrival %d is %q, which is not in the outbox", who, n, k)
			continue
		}
		if i < last {
			t.Errorf("%s: out of order: arrival %d is outbox item %d (%q) after item %d (%q) had arrived\n queued %q\n arrived %q",
				who, n, i, k, last, want[last], want, got)
		}
		if seen[k] {
			repeats++
		}
		seen[k] = true
		last = max(last, i)
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("%s: %q never arrived\n queued %q\n arrived %q", who, k, want, got)
		}
	}
	return repeats
}

// crashCustomer writes five messages, one after the other.
type crashCustomer struct {
	waID, name string
	ids, texts []string
	bodies     [][]byte
}

// crashCustomers makes n customers of four kinds: FAQ questions the bot
// answers (until the turn limit hands them to a human), a request for a
// human, a refund request (billing, a #billing ping) and an urgent
// message (a #support-urgent ping), each followed by more messages.
func crashCustomers(n int, at time.Time) []crashCustomer {
	faq := []string{
		"What are your opening hours?", "How long does delivery take?", "How can I track my order?",
		"What payment methods do you accept?", "Do you ship internationally?", "How do I cancel my order?",
		"What warranty do your products have?",
	}
	out := make([]crashCustomer, n)
	for i := range out {
		c := crashCustomer{waID: fmt.Sprintf("9199000%05d", i), name: fmt.Sprintf("Customer %02d", i)}
		switch i % 5 {
		case 0, 1:
			for k := range 5 {
				c.texts = append(c.texts, faq[(i+k)%len(faq)])
			}
		case 2:
			c.texts = []string{"Hi, what are your opening hours?", "I want to talk to a person", "hello? is an agent there?", "still waiting", "agent please"}
		case 3:
			c.texts = []string{fmt.Sprintf("I'd like a refund for order 10%02d", i), fmt.Sprintf("The order number is 10%02d", i), "agent please", "thanks", "is a real person there?"}
		case 4:
			c.texts = []string{"My card was charged twice, it's an emergency", "It happened yesterday", "agent please", "thanks", "is a real person there?"}
		}
		for k, text := range c.texts {
			id := fmt.Sprintf("wamid.crash.%02d.%d", i, k)
			c.ids = append(c.ids, id)
			c.bodies = append(c.bodies, whatsapptest.TextWebhook(e2ePhoneID, c.waID, c.name, id, text, at))
		}
		out[i] = c
	}
	return out
}

// TestServeCrash: signed webhooks under load, the server killed with
// SIGKILL mid-stream and restarted: every event that got a 200 has
// exactly one decision, every outbound item reaches its fake receiver at
// least once and in order per customer (per channel for Slack), and no
// event has two decisions.
func TestServeCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs triage serve on PostgreSQL")
	}
	dbURL := pgtest.Schema(t)
	bin := buildTriage(t)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output:\n%s", logs.String())
		}
	})

	// The fake Cloud API answers each send 100 ms after recording it, so
	// that sends are in flight when the process dies: their receiver has
	// them, their sender never heard so.
	const sendDelay = 100 * time.Millisecond
	wa := whatsapptest.NewServer()
	wa.RequireToken(e2eWAToken)
	t.Cleanup(wa.Close)
	fake := wa.Config.Handler
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fake.ServeHTTP(w, r) // buffered: the answer leaves when this handler returns
		time.Sleep(sendDelay)
	}))
	t.Cleanup(slow.Close)
	sl := slacktest.NewServer()
	t.Cleanup(sl.Close)

	rulesDir, err := filepath.Abs(e2eExampleRules)
	if err != nil {
		t.Fatal(err)
	}
	faqPath, err := filepath.Abs(e2eExampleFAQ)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: %q\nrules: %q\ndatabase: %q\n", addr, rulesDir, dbURL)
	fmt.Fprintf(&cfg, "whatsapp:\n  phone_number_id: %q\n  access_token: %q\n  app_secret: %q\n  verify_token: %q\n  api_url: %q\n",
		e2ePhoneID, e2eWAToken, e2eSecret, e2eVerifyToken, slow.URL+"/"+whatsapptest.Version)
	cfg.WriteString("slack:\n  webhooks:\n")
	for _, ch := range e2eSlackChannels {
		fmt.Fprintf(&cfg, "    %q: %q\n", ch, sl.WebhookURL(ch))
	}
	fmt.Fprintf(&cfg, "bot:\n  faq: %q\n", faqPath)
	fmt.Fprintf(&cfg, "access:\n  - {name: ops, token: %q, role: admin}\n", e2eAdminToken)
	// A lease far longer than the test may take: what the killed process
	// held is claimed again because its lease owner lock went with it,
	// not because its leases ran out. The timeout is 2 s rather than 1 s:
	// the Slack client paces a channel at a post a second, and an attempt
	// includes waiting for the channel's turn.
	cfg.WriteString("delivery:\n  workers: 8\n  attempts: 30\n  timeout: 2s\n  lease: 30m\n  backoff: 100ms\n  max_backoff: 1s\npoll: 200ms\n")
	config := filepath.Join(t.TempDir(), "triage.yaml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	first := startServe(t, "serve#1", bin, config, addr, logs)
	first.waitReady(t)
	pool := openPool(t, dbURL)

	// 40 customers × 5 messages, posted by 8 clients; each client posts
	// its customers' messages in order, one at a time, retrying a payload
	// until it gets a 200, as Meta does.
	const clients = 8
	customers := crashCustomers(40, time.Now())
	total := 0
	for _, c := range customers {
		total += len(c.ids)
	}
	killAt := int64(total * 2 / 5)

	var (
		acked        sync.Map // event id -> true once a POST of it got a 200
		oks          atomic.Int64
		failures     atomic.Int64 // attempts that got no 200
		failuresPre  atomic.Int64 // ... of them before the kill
		killed       atomic.Bool
		killNow      = make(chan struct{})
		killOnce     sync.Once
		clientErrs   = make(chan error, total)
		transport    = http.DefaultTransport.(*http.Transport).Clone()
		webhookURL   = "http://" + addr + "/webhooks/whatsapp"
		clientsDone  = make(chan struct{})
		clientsGroup sync.WaitGroup
	)
	transport.MaxIdleConnsPerHost = clients
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)
	// The clients give up at the deadline, or when the test ends early.
	posting, stopPosting := context.WithTimeout(context.Background(), durableDeadline)
	t.Cleanup(stopPosting)
	post := func(id string, body []byte) error {
		sig := whatsapptest.Sign(body, e2eSecret)
		for {
			if posting.Err() != nil {
				return fmt.Errorf("%s: no 200 within %v", id, durableDeadline)
			}
			req, err := http.NewRequestWithContext(posting, http.MethodPost, webhookURL, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "facebookexternalua")
			req.Header.Set(whatsapp.SignatureHeader, sig)
			resp, err := httpClient.Do(req)
			code := 0
			var answer []byte
			if err == nil {
				answer, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			switch {
			case code == http.StatusOK:
				acked.Store(id, true)
				if oks.Add(1) == killAt {
					killOnce.Do(func() { close(killNow) })
				}
				return nil
			case err != nil || code >= 500:
				// Refused, reset or unavailable: Meta sends it again.
				failures.Add(1)
				if !killed.Load() {
					failuresPre.Add(1)
				}
				sleep(posting, 20*time.Millisecond)
			default:
				return fmt.Errorf("%s: %d %s", id, code, answer)
			}
		}
	}
	for w := range clients {
		clientsGroup.Go(func() {
			for k := range 5 {
				for i := w; i < len(customers); i += clients {
					c := customers[i]
					if err := post(c.ids[k], c.bodies[k]); err != nil {
						clientErrs <- err
						return
					}
					sleep(posting, 5*time.Millisecond) // a stream, not a burst
				}
			}
		})
	}
	go func() { clientsGroup.Wait(); close(clientsDone) }()

	select {
	case <-killNow:
	case <-clientsDone:
		t.Fatalf("the clients finished before %d posts got a 200", killAt)
	case <-time.After(durableDeadline):
		t.Fatalf("gave up after %v waiting for %d posts to get a 200 (%d did)", durableDeadline, killAt, oks.Load())
	}
	killed.Store(true)
	first.kill()
	okAtKill := oks.Load()
	sentAtKill := len(wa.Requests())
	var leasedAtKill, pendingAtKill int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE leased_until > now()), count(*)
		FROM outbox WHERE result = 'pending'`).Scan(&leasedAtKill, &pendingAtKill); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed serve#1 with SIGKILL after %d of %d posts got a 200; %d sends had reached the fake Cloud API; "+
		"the outbox held %d pending items, %d of them leased by the dead process", okAtKill, total, sentAtKill, pendingAtKill, leasedAtKill)

	second := startServe(t, "serve#2", bin, config, addr, logs)
	second.waitReady(t)
	select {
	case <-clientsDone:
	case <-time.After(durableDeadline):
		t.Fatalf("gave up after %v waiting for the clients; %d of %d posts got a 200", durableDeadline, oks.Load(), total)
	}
	close(clientErrs)
	for err := range clientErrs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var ackedIDs []string
	acked.Range(func(k, _ any) bool { ackedIDs = append(ackedIDs, k.(string)); return true })
	if len(ackedIDs) != total {
		t.Fatalf("%d distinct events got a 200, want %d", len(ackedIDs), total)
	}
	if okAtKill <= 0 || okAtKill >= int64(total) {
		t.Fatalf("the kill was not mid-stream: %d of %d posts had a 200 before it", okAtKill, total)
	}

	// Settle: every item delivered (an ask_bot item is done only once the
	// bot's answer, and what it queued, is committed).
	eventuallyWithin(t, durableDeadline, "the outbox to drain", func() (bool, string) {
		st := countBy(t, pool, `SELECT result, count(*)::int FROM outbox GROUP BY result`)
		return st["pending"] == 0, fmt.Sprint(st)
	})

	// Every acknowledged event has exactly one decision, and no event id
	// has two.
	decided := countBy(t, pool, `SELECT event_id, count(*)::int FROM decisions GROUP BY event_id`)
	for _, id := range ackedIDs {
		if n := decided[id]; n != 1 {
			t.Errorf("event %s got a 200 and has %d decisions, want 1", id, n)
		}
	}
	kinds := map[string]int{}
	for id, n := range decided {
		if n != 1 {
			t.Errorf("event %s has %d decisions", id, n)
		}
		kind, _, _ := strings.Cut(id, ".")
		if k, _, ok := strings.Cut(id, ":"); ok {
			kind = k
		}
		kinds[kind] += n
	}
	if kinds["wamid"] != total {
		t.Errorf("%d decisions of webhook messages, want %d", kinds["wamid"], total)
	}

	rows := readOutbox(t, pool)
	byResult := map[string]int{}
	waWant := map[string][]string{}    // conversation -> WhatsApp keys, in outbox order
	slackWant := map[string][]string{} // channel -> texts, in outbox order
	replies := map[string]int{}        // conversation -> reply items
	reclaimed := 0
	for _, r := range rows {
		byResult[r.result]++
		if r.result != "delivered" {
			t.Errorf("outbox item %d (%s %s) is %s, want delivered", r.id, r.kind, r.key, r.result)
		}
		if r.attempts > 1 {
			reclaimed++
		}
		switch r.kind {
		case schemas.OutboundReply, schemas.OutboundTemplate:
			waWant[r.conv] = append(waWant[r.conv], r.key)
			replies[r.conv]++
		case schemas.OutboundNotify:
			slackWant[r.channel] = append(slackWant[r.channel], r.txt)
		case schemas.OutboundAskBot:
			// The bot's answer is an event of its own, evaluated once
			// however many times the bot was asked.
			if n := decided["bot:"+r.key]; n != 1 {
				t.Errorf("ask_bot %s: the bot's answer has %d decisions, want 1", r.key, n)
			}
		}
	}
	if got := len(slackWant["#billing"]); got != 8 {
		t.Errorf("%d #billing pings queued, want 8 (one per refund customer)", got)
	}
	if got := len(slackWant["#support-urgent"]); got != 8 {
		t.Errorf("%d #support-urgent pings queued, want 8 (one per urgent customer)", got)
	}

	// The conversation's record: each customer message once, and each
	// reply recorded as sent once, however many times it was sent.
	inbound := countBy(t, pool, `SELECT conversation_id, count(*)::int FROM messages WHERE sender = 'customer' GROUP BY 1`)
	outbound := countBy(t, pool, `SELECT conversation_id, count(*)::int FROM messages WHERE sender = 'triage' GROUP BY 1`)
	for _, c := range customers {
		conv := waConv(c.waID)
		if inbound[conv] != len(c.ids) {
			t.Errorf("%s has %d customer messages, want %d", conv, inbound[conv], len(c.ids))
		}
		if outbound[conv] != replies[conv] {
			t.Errorf("%s has %d messages from triage, want one per reply queued: %d", conv, outbound[conv], replies[conv])
		}
	}

	// What the receivers got: per customer (WhatsApp) and per channel
	// (Slack), everything, in outbox order, repeats only in place.
	waGot := map[string][]string{}
	refusedSends := 0
	for _, r := range wa.Requests() {
		if r.Status != http.StatusOK {
			refusedSends++ // a send cut off by the kill, say
			continue
		}
		conv := waConv(r.Message.To)
		waGot[conv] = append(waGot[conv], r.Message.BizOpaqueCallbackData)
	}
	waRepeats, waSends := 0, 0
	for _, c := range customers {
		conv := waConv(c.waID)
		waRepeats += checkOrder(t, "WhatsApp to "+c.waID, waWant[conv], waGot[conv])
		waSends += len(waGot[conv])
	}
	if len(waGot) > len(customers) {
		t.Errorf("the fake Cloud API got sends for %d recipients, want at most %d", len(waGot), len(customers))
	}
	slackGot := sl.Delivered()
	slackRepeats, pings := 0, 0
	for ch, want := range slackWant {
		slackRepeats += checkOrder(t, "Slack "+ch, want, slackGot[ch])
		pings += len(slackGot[ch])
	}
	for ch, got := range slackGot {
		if _, ok := slackWant[ch]; !ok {
			t.Errorf("Slack %s got %q, and nothing was queued for it", ch, got)
		}
	}

	t.Logf("posts: %d events, %d got their 200 before the kill and %d after; %d attempts failed (%d before the kill, %d from it on) and were sent again",
		total, okAtKill, int64(total)-okAtKill, failures.Load(), failuresPre.Load(), failures.Load()-failuresPre.Load())
	t.Logf("decisions: %d (%v); outbox: %d items %v, %d claimed more than once",
		len(decided), kinds, len(rows), byResult, reclaimed)
	t.Logf("receivers: %d WhatsApp sends (%d keys), %d of them repeats after the crash, %d refused; %d Slack pings, %d repeats",
		waSends, waSends-waRepeats, waRepeats, refusedSends, pings, slackRepeats)
}

// replicaRules is TestServeReplicas' rule set: a desk of three agents
// with four seats each, a human keyword that escalates and assigns, a
// bot-turn limit that does the same, and a three-second first response
// whose breach is tagged and noted.
const replicaRules = `version: 1

params:
  bot_turn_limit: 3

lists:
  human_keywords: [human, agent]

teams:
  desk:
    strategy: round_robin
    members:
      - {id: ana, name: Ana Alves, capacity: 4}
      - {id: bo, name: Bo Berg, capacity: 4}
      - {id: cy, name: Cy Cole, capacity: 4}

sla:
  - name: escalated
    when: conversation.escalated
    first_response: 3s

rules:
  - name: human-keyword
    on: [message.received]
    when: conversation.handler == "bot" && contains_any(event.text, lists.human_keywords)
    stop: true
    actions:
      - escalate: {reason: keyword}
      - assign: {team: desk}

  - name: bot-turn-limit
    on: [bot.answered]
    when: conversation.handler == "bot" && conversation.bot_turns >= params.bot_turn_limit
    actions:
      - escalate: {reason: turn_limit}
      - assign: {team: desk}

  - name: breached
    on: [sla.breached]
    actions:
      - tag: {add: [sla_breached]}
      - note: {text: "SLA breached: {{ event.sla.metric }} was due at {{ event.sla.due_at }}"}
`

// replicaRuleTests pin, with triage test, what TestServeReplicas
// expects of the rules: bot_turns stops at the limit, and an escalated
// conversation breaches first response once.
const replicaRuleTests = `tests:
  - name: bot turns stop counting at the limit, which escalates
    events:
      - message: "hello"
      - {bot: "Try this.", confidence: 0.9}
      - {bot: "Try this.", confidence: 0.9}
      - {bot: "Try this.", confidence: 0.9, expect: {matched: [], conversation: {bot_turns: 3, handler: bot}}}
      - {bot: "Try this.", confidence: 0.9, expect: {matched: [bot-turn-limit], conversation: {bot_turns: 3, handler: human, assignee: ana}}}
      - {bot: "Try this.", confidence: 0.9, expect: {matched: [], conversation: {bot_turns: 3}}}
  - name: an escalation breaches first response once
    events:
      - message: "agent please"
        expect: {matched: [human-keyword], conversation: {assignee: ana, escalated: true}}
      - wait: 1m
        expect:
          fired:
            - {type: sla.breached, metric: first_response, policy: escalated}
`

// TestServeReplicas: three serve processes on one database, the same
// conversations hit through all of them at once: bot_turns, assignments
// and capacity exact, and each SLA deadline fires once although three
// timers race for it. One request for a human is evaluated after a
// message timed later than it, as a webhook Meta delivered again after
// a 503 is: its first response must be due, and breach, like the others.
// (Today it does not: engine's before() moves last_customer_message_at
// back to the late message's time, earlier than opened_at, and
// slaUpdate's "a customer message is waiting" compares the two, so the
// first-response clock never starts.)
func TestServeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs triage serve on PostgreSQL")
	}
	dbURL := pgtest.Schema(t)
	bin := buildTriage(t)

	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rulesDir, "desk.yaml"), []byte(replicaRules))
	writeFile(t, filepath.Join(rulesDir, "desk_test.yaml"), []byte(replicaRuleTests))
	for _, sub := range []string{"check", "test"} {
		if out, err := exec.Command(bin, sub, rulesDir).CombinedOutput(); err != nil {
			t.Fatalf("triage %s %s: %v\n%s", sub, rulesDir, err, out)
		}
	}

	const serviceToken, adminToken = "replicas-service-token", "replicas-admin-token"
	const replicas = 3
	var procs []*serveProcess
	var logs []*syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("replica %d output:\n%s", i+1, l.String())
			}
		}
	})
	for i := range replicas {
		addr := freeAddr(t)
		cfg := fmt.Sprintf("listen: %q\nrules: %q\ndatabase: %q\naccess:\n  - {name: inbox, token: %q, role: service}\n  - {name: ops, token: %q, role: admin}\npoll: 200ms\n",
			addr, rulesDir, dbURL, serviceToken, adminToken)
		path := filepath.Join(dir, fmt.Sprintf("replica%d.yaml", i+1))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		l := &syncBuffer{}
		logs = append(logs, l)
		procs = append(procs, startServe(t, fmt.Sprintf("replica %d", i+1), bin, path, addr, l))
	}
	for _, p := range procs {
		p.waitReady(t)
	}
	pool := openPool(t, dbURL)

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Timeout: 30 * time.Second, Transport: transport}
	var turn atomic.Uint64
	perReplica := make([]atomic.Int64, replicas)
	// call sends a request to the next replica in turn.
	call := func(method, path, token string, body []byte) (int, []byte, error) {
		i := int(turn.Add(1) % replicas)
		perReplica[i].Add(1)
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, procs[i].url(path), r)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s via %s: %w", method, path, procs[i].name, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	// postAll posts each event on its own, 16 at a time, through the
	// replicas in turn, and requires each to be accepted. An event
	// without a time is timed as it is sent.
	posted := 0
	postAll := func(events []schemas.Event) {
		t.Helper()
		jobs := make(chan schemas.Event)
		errs := make(chan error, len(events))
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for ev := range jobs {
					if ev.At.IsZero() {
						ev.At = time.Now().UTC()
					}
					body, err := json.Marshal(ev)
					if err != nil {
						errs <- err
						continue
					}
					code, ans, err := call(http.MethodPost, "/v1/events", serviceToken, body)
					if err != nil || code != http.StatusAccepted || strings.TrimSpace(string(ans)) != `{"accepted":1}` {
						errs <- fmt.Errorf("POST /v1/events %s: %d %s %v", ev.ID, code, ans, err)
					}
				}
			})
		}
		for _, ev := range events {
			jobs <- ev
		}
		close(jobs)
		wg.Wait()
		close(errs)
		failed := false
		for err := range errs {
			t.Error(err)
			failed = true
		}
		if failed {
			t.FailNow()
		}
		posted += len(events)
	}
	list := func() map[string]schemas.Conversation {
		t.Helper()
		code, body, err := call(http.MethodGet, "/v1/conversations", adminToken, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /v1/conversations: %d %s %v", code, body, err)
		}
		var l struct {
			Conversations []schemas.Conversation `json:"conversations"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		out := map[string]schemas.Conversation{}
		for _, c := range l.Conversations {
			out[c.ID] = c
		}
		return out
	}
	agents := []string{"ana", "bo", "cy"}
	const capacity = 4
	// checkSeats checks capacity against the conversations: each agent's
	// open count in the database is the number of open conversations
	// assigned to it, and wantOpen.
	checkSeats := func(when string, convs map[string]schemas.Conversation, wantOpen int) {
		t.Helper()
		assigned := map[string]int{}
		for _, c := range convs {
			if c.Status != schemas.StatusResolved && c.Assignee != "" {
				assigned[c.Assignee]++
			}
		}
		open := countBy(t, pool, `SELECT id, open FROM agents`)
		for _, a := range agents {
			if open[a] != assigned[a] || open[a] != wantOpen {
				t.Errorf("%s: agent %s has open = %d in the agents table and %d open conversations assigned, want %d (capacity %d)",
					when, a, open[a], assigned[a], wantOpen, capacity)
			}
		}
		for a := range assigned {
			if !slices.Contains(agents, a) {
				t.Errorf("%s: conversations assigned to %q, who is no agent of the desk", when, a)
			}
		}
	}
	// checkQueue checks that every replica's metrics count want
	// conversations waiting in the desk's queue.
	checkQueue := func(when string, want int) {
		t.Helper()
		const series = `triage_team_queue_waiting{team="desk"} `
		for _, p := range procs {
			resp, err := client.Get(p.url("/metrics"))
			if err != nil {
				t.Fatalf("GET /metrics of %s: %v", p.name, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics of %s: %d %v", p.name, resp.StatusCode, err)
			}
			got := "absent"
			for line := range strings.SplitSeq(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, series); ok {
					got = strings.TrimSpace(v)
				}
			}
			if got != fmt.Sprint(want) {
				t.Errorf("%s: %s reports %s%s, want %d", when, p.name, series, got, want)
			}
		}
	}

	// 20 conversations the bot handles, with 1 to 5 answers each (the
	// limit is 3: those with 4 or 5 escalate), and 12 whose customer asks
	// for a human in one of three messages sent at once (timed the same
	// second, as WhatsApp times them).
	const botLimit = 3
	answers := map[string]int{}
	escalated := map[string]bool{}
	var botConvs, humanConvs []string
	var opening, concurrent []schemas.Event
	for i := range 20 {
		id := fmt.Sprintf("rep-b%02d", i)
		botConvs = append(botConvs, id)
		answers[id] = 1 + i%5
		escalated[id] = answers[id] > botLimit
		opening = append(opening, schemas.Event{ID: id + "-m", Type: schemas.MessageReceived, Conversation: id,
			Contact: &schemas.Contact{ID: fmt.Sprintf("3161000%04d", i), Name: fmt.Sprintf("Bot customer %02d", i)}, Text: "hello, a question about my order"})
		for k := range answers[id] {
			concurrent = append(concurrent, schemas.Event{ID: fmt.Sprintf("%s-a%d", id, k), Type: schemas.BotAnswered, Conversation: id,
				Text: "Have you tried turning it off and on again?", Confidence: 0.9})
		}
	}
	postAll(opening)

	// One more customer asks for a human, and that message is evaluated
	// after a later one: what happens when its webhook was answered 503
	// (a replica busy or killed) and Meta delivered it again after the
	// customer's next message had got through. It takes the first seat,
	// and its deadline falls before any of the others'.
	const late = "rep-late"
	humanConvs = append(humanConvs, late)
	escalated[late] = true
	lateAt := time.Now().UTC().Truncate(time.Second)
	lateContact := &schemas.Contact{ID: "31630000000", Name: "Late customer"}
	postAll([]schemas.Event{{ID: late + "-m1", Type: schemas.MessageReceived, Conversation: late, At: lateAt, Contact: lateContact, Text: "hello?"}})
	postAll([]schemas.Event{{ID: late + "-m0", Type: schemas.MessageReceived, Conversation: late, At: lateAt.Add(-2 * time.Second), Contact: lateContact, Text: "I need to speak to an agent"}})

	humanAt := time.Now().UTC().Truncate(time.Second)
	for i := range 12 {
		id := fmt.Sprintf("rep-h%02d", i)
		humanConvs = append(humanConvs, id)
		escalated[id] = true
		for k, text := range []string{"hello", "agent please", "are you still there?"} {
			concurrent = append(concurrent, schemas.Event{ID: fmt.Sprintf("%s-m%d", id, k), Type: schemas.MessageReceived, Conversation: id, At: humanAt,
				Contact: &schemas.Contact{ID: fmt.Sprintf("3162000%04d", i), Name: fmt.Sprintf("Human customer %02d", i)}, Text: text})
		}
	}
	nEscalated := 0
	for _, e := range escalated {
		if e {
			nEscalated++
		}
	}
	// 21 escalations for 12 seats, raced through the replicas.
	rand.Shuffle(len(concurrent), func(i, j int) { concurrent[i], concurrent[j] = concurrent[j], concurrent[i] })
	postAll(concurrent)

	// bot_turns, escalations and seats, read through the API.
	convs := list()
	if len(convs) != len(botConvs)+len(humanConvs) {
		t.Fatalf("%d conversations listed, want %d", len(convs), len(botConvs)+len(humanConvs))
	}
	waiting := 0
	for id, c := range convs {
		wantTurns := min(answers[id], botLimit)
		if c.BotTurns != wantTurns {
			t.Errorf("%s: bot_turns %d after %d bot answers, want %d", id, c.BotTurns, answers[id], wantTurns)
		}
		wantHandler := schemas.HandlerBot
		if escalated[id] {
			wantHandler = schemas.HandlerHuman
		}
		if c.Escalated != escalated[id] || c.Handler != wantHandler || c.Status != schemas.StatusOpen {
			t.Errorf("%s: escalated %v, handler %s, status %s; want escalated %v, handler %s, open", id, c.Escalated, c.Handler, c.Status, escalated[id], wantHandler)
		}
		if !escalated[id] && (c.Assignee != "" || c.Team != "") {
			t.Errorf("%s: not escalated, yet assignee %q team %q", id, c.Assignee, c.Team)
		}
		if escalated[id] && c.Assignee == "" {
			waiting++
		}
	}
	checkSeats("after the escalations", convs, capacity)
	if want := nEscalated - len(agents)*capacity; waiting != want {
		t.Errorf("%d escalated conversations wait, want %d", waiting, want)
	}
	checkQueue("after the escalations", waiting)
	var before []string // the conversations waiting
	for id, c := range convs {
		if escalated[id] && c.Assignee == "" {
			before = append(before, id)
		}
	}
	sort.Strings(before)
	if t.Failed() {
		t.FailNow()
	}

	// Three seconds after each escalation its first response is due: the
	// three replicas' timers race for every deadline.
	breaches := func() map[string]int {
		return countBy(t, pool, `SELECT conversation_id, count(*)::int FROM decisions
			WHERE record->'event'->>'type' = 'sla.breached' GROUP BY 1`)
	}
	// The wait leaves out the late conversation, whose deadline falls
	// first anyway: the timers claim the earliest due first.
	eventuallyWithin(t, durableDeadline, "every escalated conversation's breach", func() (bool, string) {
		b := breaches()
		var missing []string
		for id, e := range escalated {
			if e && b[id] == 0 && id != late {
				missing = append(missing, id)
			}
		}
		sort.Strings(missing)
		return len(missing) == 0, fmt.Sprintf("%d conversations breached; none for %q; %s", len(b), missing, slaState(t, pool, missing))
	})
	time.Sleep(time.Second) // five polls of every timer: room for a second firing, or a late one
	checkBreaches := func(when string) int {
		t.Helper()
		b := breaches()
		fired := 0
		for id := range convs {
			want := 0
			if escalated[id] {
				want = 1
			}
			if b[id] != want {
				t.Errorf("%s: %s has %d sla.breached decisions, want %d; %s", when, id, b[id], want, slaState(t, pool, []string{id}))
			}
			fired += b[id]
		}
		return fired
	}
	checkBreaches("after the deadlines")

	// Resolve two conversations of each agent, through the replicas at
	// once: the six oldest waiting take the seats.
	var resolved []schemas.Event
	resolvedIDs := map[string]bool{}
	for _, a := range agents {
		var mine []string
		for id, c := range convs {
			if c.Assignee == a {
				mine = append(mine, id)
			}
		}
		sort.Strings(mine)
		for _, id := range mine[:2] {
			resolvedIDs[id] = true
			resolved = append(resolved, schemas.Event{ID: id + "-resolved", Type: schemas.ConversationResolved, Conversation: id, Agent: a})
		}
	}
	postAll(resolved)
	after := list()
	checkSeats("after the resolutions", after, capacity)
	// Each freed seat went to a conversation that was waiting, one each;
	// the rest still wait.
	var drained, stillWaiting []string
	for _, id := range before {
		if after[id].Assignee != "" {
			drained = append(drained, id)
		} else {
			stillWaiting = append(stillWaiting, id)
		}
	}
	if len(drained) != len(resolved) || len(stillWaiting) != len(before)-len(resolved) {
		t.Errorf("after %d resolutions, %q of the waiting %q were assigned, want %d of them", len(resolved), drained, before, len(resolved))
	}
	checkQueue("after the resolutions", len(stillWaiting))
	for id, c := range after {
		switch {
		case resolvedIDs[id]:
			if c.Status != schemas.StatusResolved || c.BotTurns != 0 || c.Escalated {
				t.Errorf("%s was resolved: status %s, bot_turns %d, escalated %v", id, c.Status, c.BotTurns, c.Escalated)
			}
		case slices.Contains(drained, id):
			if c.Status != schemas.StatusOpen || !c.Escalated {
				t.Errorf("%s was assigned from the queue, yet status %s, escalated %v", id, c.Status, c.Escalated)
			}
		case slices.Contains(stillWaiting, id):
			if c.Status != schemas.StatusOpen || !c.Escalated || c.Team != "desk" {
				t.Errorf("%s still waits, yet status %s, escalated %v, team %q", id, c.Status, c.Escalated, c.Team)
			}
		default:
			if c.Assignee != convs[id].Assignee || c.BotTurns != convs[id].BotTurns {
				t.Errorf("%s changed without an event: assignee %q -> %q, bot_turns %d -> %d", id, convs[id].Assignee, c.Assignee, convs[id].BotTurns, c.BotTurns)
			}
		}
	}

	// Every conversation was given to one agent at most, once, and the
	// agent it is with is that one.
	given := map[string][]string{}
	rows, err := pool.Query(context.Background(), `SELECT record FROM decisions ORDER BY conversation_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []schemas.Decision
	for rows.Next() {
		var raw []byte
		var d schemas.Decision
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		decisions = append(decisions, d)
		for _, a := range d.Actions {
			if agent, ok := a.Result["agent"].(string); ok && a.Type == "assign" {
				given[d.Event.Conversation] = append(given[d.Event.Conversation], agent)
			}
		}
		for _, a := range d.Assignments {
			given[a.Conversation] = append(given[a.Conversation], a.Agent)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, c := range after {
		switch g := given[id]; {
		case len(g) > 1:
			t.Errorf("%s was given to %q", id, g)
		case c.Assignee != "" && (len(g) != 1 || g[0] != c.Assignee):
			t.Errorf("%s is with %s but its decisions gave it to %q", id, c.Assignee, g)
		case c.Assignee == "" && len(g) != 0:
			t.Errorf("%s is with nobody but its decisions gave it to %q", id, g)
		}
	}

	// Past another deadline's worth of time, nothing fired again, and
	// every event has exactly one decision.
	time.Sleep(4 * time.Second)
	fired := checkBreaches("at the end")
	decided := countBy(t, pool, `SELECT event_id, count(*)::int FROM decisions GROUP BY event_id`)
	for id, n := range decided {
		if n != 1 {
			t.Errorf("event %s has %d decisions", id, n)
		}
	}
	if total := queryInt(t, pool, `SELECT count(*)::int FROM decisions`); total != posted+nEscalated {
		t.Errorf("%d decisions, want %d: one per event posted (%d) and one per breach (%d)", total, posted+nEscalated, posted, nEscalated)
	}
	var calls []int64
	for i := range perReplica {
		calls = append(calls, perReplica[i].Load())
	}
	t.Logf("%d replicas, requests per replica %v: %d events posted (%d bot answers), %d escalations for %d seats, %d resolutions, %d drained from the queue, %d still waiting; %d sla.breached decisions for %d escalated conversations; %d decisions read back",
		replicas, calls, posted, sumValues(answers), nEscalated, len(agents)*capacity, len(resolved), len(drained), len(stillWaiting), fired, nEscalated, len(decisions))
}

// slaState describes conversations' SLA state in the database and the
// events they were evaluated for, in order, for a failure message.
func slaState(t *testing.T, pool *pgxpool.Pool, ids []string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		var next *time.Time
		var sla, flags string
		err := pool.QueryRow(context.Background(), `SELECT next_sla_at, coalesce(state->'sla_clocks', 'null')::text,
			concat_ws(' ', 'status=' || (state->'conversation'->>'status'), 'handler=' || (state->'conversation'->>'handler'),
				'assignee=' || (state->'conversation'->>'assignee'), 'escalated=' || (state->'conversation'->>'escalated'),
				'opened_at=' || (state->'conversation'->>'opened_at'), 'last_customer_message_at=' || (state->'conversation'->>'last_customer_message_at'))
			FROM conversations WHERE id = $1`, id).Scan(&next, &sla, &flags)
		if err != nil {
			fmt.Fprintf(&b, "\n%s: %v", id, err)
			continue
		}
		fmt.Fprintf(&b, "\n%s: next_sla_at %v, %s, sla clocks %s; decisions:", id, next, flags, sla)
		rows, err := pool.Query(context.Background(), `SELECT record->'event'->>'id', record->'event'->>'type', record->'event'->>'at',
			coalesce(record->'conversation'->'sla', 'null')::text FROM decisions WHERE conversation_id = $1 ORDER BY seq`, id)
		if err != nil {
			fmt.Fprintf(&b, " %v", err)
			continue
		}
		for rows.Next() {
			var eid, typ, at, s string
			if err := rows.Scan(&eid, &typ, &at, &s); err != nil {
				fmt.Fprintf(&b, " %v", err)
				break
			}
			fmt.Fprintf(&b, "\n  %s %s at %s -> sla %s", eid, typ, at, s)
		}
		rows.Close()
	}
	return b.String()
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
