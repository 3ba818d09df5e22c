package main

// BenchmarkServePostgres: the daemon with its state in PostgreSQL, against
// pgbench running, on the same database in the same run, the transaction
// one event costs at the least: insert the event, upsert the
// conversation, insert the decision, insert an outbox row, with payloads
// of the sizes triage writes. docs/benchmarks.md, section 5, has figures.
//
//	go test -run='^$' -bench=ServePostgres -benchtime=20000x ./cmd/triage/
//
// Sub-benchmarks:
//   - ack: with testdata/bench-ack's one rule, which tags and sends
//     nothing: webhooks acknowledged per second, each a committed unit of
//     work, with no delivery work competing;
//   - reply: benchWorkload's signed webhooks from TRIAGE_BENCH_CLIENTS
//     concurrent clients (default 32) as fast as they are acknowledged
//     (each 200 is a committed unit of work), then until every reply
//     reached the fake Cloud API, with testdata/bench-reply's one rule:
//     each webhook is pgbench's transaction, then a delivery;
//   - faq: the same with examples/rules and the FAQ bot, as
//     BenchmarkServeWebhooks: each FAQ question is two units (the
//     message, the bot's answer) and two deliveries, and one conversation
//     in five waits for a human in a team at capacity;
//   - pgbench: the same number of transactions from as many clients;
//   - reply-1000/s, faq-1000/s and pgbench-1000/s: an open-loop load of
//     1,000 per second (webhooks; transactions) for b.N of them, for the
//     latency at that rate, after a first second at that rate whose
//     latencies are not counted (benchWarmup).
//
// TRIAGE_BENCH_SHARDS sets the daemon's evaluation shards (default serve's
// with PostgreSQL, server.DefaultShards).
//
// pgbench must be installed, and PostgreSQL reachable as connectors/
// postgres/pgtest finds it; without them the benchmark is skipped.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/postgres/pgtest"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/server"
)

// pgbenchScript is one event's transaction. Conversations are drawn from
// 10,000, so that upserts mostly update, as a busy inbox's do.
const pgbenchScript = `\set c random(1, 10000)
\set r random(1, 999999999999)
BEGIN;
INSERT INTO events (id, conversation_id, type, at, payload) VALUES ('pgb:' || :r::text, 'c' || :c::text, 'message.received', now(), :payload::jsonb) ON CONFLICT (id) DO NOTHING;
INSERT INTO conversations (id, state, status, team, assignee, contact_id, next_sla_at) VALUES ('c' || :c::text, :state::jsonb, 'open', 'support', 'anita', 'p' || :c::text, now() + interval '5 minutes')
  ON CONFLICT (id) DO UPDATE SET state = excluded.state, status = excluded.status, team = excluded.team, assignee = excluded.assignee, next_sla_at = excluded.next_sla_at, updated_at = now();
INSERT INTO decisions (conversation_id, event_id, ruleset, record) VALUES ('c' || :c::text, 'pgb:' || :r::text, 'sha256:000000000000', :decision::jsonb);
INSERT INTO outbox (conversation_id, order_key, key, kind, contact_id, params, decided_at, due_at) VALUES ('c' || :c::text, 'c:' || 'c' || :c::text, 'pgb:' || :r::text || '/r/2', 'reply', 'p' || :c::text, :params::jsonb, now(), now()) ON CONFLICT (key) DO NOTHING;
END;
`

// pgbenchPayloads are what triage writes for one handoff: the event, the
// conversation's state, the decision record and the reply's params.
func pgbenchPayloads(tb testing.TB) map[string]string {
	tb.Helper()
	set, err := rules.Load(e2eExampleRules, rules.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	eng := engine.New()
	ev := schemas.Event{ID: "wamid.HBgLNDQ3NzAwOTAwMDAxFQIAEhggQTk1", Type: schemas.MessageReceived, At: e2eMonday,
		Conversation: whatsapp.ConversationID(e2ePhoneID, "447700900001"), Kind: "text", Text: "Can I speak to someone?",
		Contact: &schemas.Contact{ID: "447700900001", Name: "Sam Lee", Phone: "+447700900001"}}
	d, err := eng.Process(set, &ev)
	if err != nil || len(d.Outbound) == 0 {
		tb.Fatalf("the handoff decided %+v, %v", d, err)
	}
	c, _ := eng.Conversation(ev.Conversation)
	state, _ := engine.MarshalConv(&c)
	event, _ := json.Marshal(ev)
	record, err := schemas.AppendDecision(nil, &d)
	if err != nil {
		tb.Fatal(err)
	}
	params, _ := json.Marshal(d.Outbound[0].Params)
	return map[string]string{"payload": string(event), "state": string(state), "decision": string(record), "params": string(params)}
}

// pgbenchRun runs pgbench with args on the database at url (its schema
// in search_path) and returns its tps and the latency of every
// transaction that ended more than skip after the first one did.
func pgbenchRun(tb testing.TB, url string, skip time.Duration, args ...string) (tps float64, latency []time.Duration) {
	tb.Helper()
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		tb.Skip("pgbench is not installed")
	}
	dir := tb.TempDir()
	script := filepath.Join(dir, "event.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		tb.Fatal(err)
	}
	full := []string{"-n", "-M", "prepared", "-f", script, "-l", "--log-prefix", filepath.Join(dir, "pgb")}
	for k, v := range pgbenchPayloads(tb) {
		full = append(full, "-D", k+"="+v)
	}
	full = append(full, args...)
	// libpq takes search_path from PGOPTIONS, not from the URL as pgx does.
	schema := searchPath(tb, url)
	u, err := neturl.Parse(url)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	cmd := exec.Command(bin, append(full, u.String())...)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		tb.Fatalf("pgbench printed no tps:\n%s", out)
	}
	tps, _ = strconv.ParseFloat(string(m[1]), 64)
	if bytes.Contains(out, []byte("number of failed transactions: ")) && !bytes.Contains(out, []byte("number of failed transactions: 0 ")) {
		tb.Fatalf("pgbench transactions failed:\n%s", out)
	}
	type sample struct {
		end     time.Time
		latency time.Duration
	}
	var samples []sample
	logs, _ := filepath.Glob(filepath.Join(dir, "pgb.*"))
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time_us script_no time_epoch time_us [schedule_lag]
			fields := strings.Fields(sc.Text())
			if len(fields) < 6 {
				continue
			}
			var n [3]int64
			for i, f := range []string{fields[2], fields[4], fields[5]} {
				if n[i], err = strconv.ParseInt(f, 10, 64); err != nil {
					tb.Fatalf("pgbench log line %q: %v", sc.Text(), err)
				}
			}
			samples = append(samples, sample{time.Unix(n[1], n[2]*1000), time.Duration(n[0]) * time.Microsecond})
		}
		f.Close()
	}
	if len(samples) == 0 {
		tb.Fatal("pgbench logged no transaction")
	}
	first := slices.MinFunc(samples, func(a, b sample) int { return a.end.Compare(b.end) }).end
	for _, s := range samples {
		if s.end.Sub(first) >= skip {
			latency = append(latency, s.latency)
		}
	}
	slices.Sort(latency)
	return tps, latency
}

// searchPath is the search_path a pgtest URL sets.
func searchPath(tb testing.TB, url string) string {
	i := strings.Index(url, "search_path=")
	if i < 0 {
		tb.Fatalf("%s sets no search_path", url)
	}
	return strings.SplitN(url[i+len("search_path="):], "&", 2)[0]
}

// migrated returns a fresh, migrated schema for pgbench.
func migrated(tb testing.TB) string {
	tb.Helper()
	url := pgtest.Schema(tb)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Migrate: true})
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	return url
}

// benchWarmup is how many webhooks (or pgbench transactions: as many
// seconds' worth) an open-loop run sends at its rate before the ones it
// measures, so that the latencies are those of a running daemon: its
// connections to PostgreSQL opened and their statements prepared, the
// load's HTTP connections open. pgbench is measured after its connections
// are open too, and its first second is dropped likewise.
const benchWarmup = 1000

// rateConns is how many connections an open-loop load opens at most.
const rateConns = 256

// rateClient is the HTTP client of an open-loop load.
func rateClient(tb testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConns: rateConns, MaxIdleConnsPerHost: rateConns, MaxConnsPerHost: rateConns, DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// postAtRate POSTs msgs at rate per second, each on its own schedule
// whatever the answers to earlier ones (an open loop, as Meta sends), from
// hc's connections, and returns every exchange's latency from its
// scheduled time: a request that waited for a free connection counts the
// wait.
func postAtRate(tb testing.TB, hc *http.Client, url string, msgs []benchMsg, rate int) []time.Duration {
	const conns = rateConns
	lat := make([]time.Duration, len(msgs))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	due := make(chan int, len(msgs))
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := range due {
				at := start.Add(time.Duration(i) * interval)
				time.Sleep(time.Until(at))
				m := &msgs[i]
				for {
					code, err := m.post(hc, url)
					if err != nil {
						tb.Errorf("webhook %d: %v", i, err)
						return
					}
					if code == http.StatusOK {
						break
					}
					if code != http.StatusServiceUnavailable {
						tb.Errorf("webhook %d: status %d", i, code)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				lat[i] = time.Since(at)
			}
		})
	}
	for i := range msgs {
		due <- i
	}
	close(due)
	wg.Wait()
	slices.Sort(lat)
	return lat
}

// benchReplyRules answers every message with one reply: a webhook then
// costs pgbench's transaction, and the reply's delivery. benchAckRules
// only tags it: the acknowledgement path alone.
const (
	benchReplyRules = "testdata/bench-reply"
	benchAckRules   = "testdata/bench-ack"
)

func BenchmarkServePostgres(b *testing.B) {
	clients := benchEnv(b, "TRIAGE_BENCH_CLIENTS", 32)
	shards := benchEnv(b, "TRIAGE_BENCH_SHARDS", server.DefaultShards(false)) // serve's default
	pgtest.URL(b)
	daemon := func(rules, bot string) func(b *testing.B) {
		return func(b *testing.B) {
			msgs := benchWorkload(b, b.N)
			s := newServeStack(b, stackOptions{Rules: rules, Bot: bot, FixedClock: true, Quiet: true, Database: freshSchema, Shards: shards})
			b.ResetTimer()
			res := postLoad(b, s.URL, msgs, clients)
			s.waitDelivered(b, len(msgs), 10*time.Minute)
			elapsed := b.Elapsed()
			b.StopTimer()
			slices.Sort(res.latency)
			events := s.metric(b, `triage_unit_events_sum`)
			units := s.metric(b, `triage_unit_events_count`)
			b.ReportMetric(float64(len(msgs))/res.posted.Seconds(), "acked/s")
			b.ReportMetric(float64(len(msgs))/elapsed.Seconds(), "webhooks/s")
			b.ReportMetric(events/elapsed.Seconds(), "events/s")
			b.ReportMetric(events/units, "events/unit")
			b.ReportMetric(quantileMS(res.latency, 0.50), "p50-ms")
			b.ReportMetric(quantileMS(res.latency, 0.99), "p99-ms")
			b.ReportMetric(float64(res.refused)/float64(len(msgs)), "503s/webhook")
		}
	}
	atRate := func(rules, bot string) func(b *testing.B) {
		return func(b *testing.B) {
			msgs := benchWorkload(b, benchWarmup+b.N)
			s := newServeStack(b, stackOptions{Rules: rules, Bot: bot, FixedClock: true, Quiet: true, Database: freshSchema, Shards: shards})
			hc := rateClient(b)
			warm := postAtRate(b, hc, s.URL, msgs[:benchWarmup], 1000)
			s.waitDelivered(b, benchWarmup, 10*time.Minute)
			b.ResetTimer()
			lat := postAtRate(b, hc, s.URL, msgs[benchWarmup:], 1000)
			b.StopTimer()
			b.ReportMetric(quantileMS(lat, 0.50), "p50-ms")
			b.ReportMetric(quantileMS(lat, 0.99), "p99-ms")
			b.ReportMetric(quantileMS(lat, 0.999), "p99.9-ms")
			b.ReportMetric(quantileMS(warm, 0.99), "warmup-p99-ms")
			s.waitDelivered(b, len(msgs), 10*time.Minute)
		}
	}
	b.Run("ack", func(b *testing.B) {
		msgs := benchWorkload(b, b.N)
		s := newServeStack(b, stackOptions{Rules: benchAckRules, Bot: "none", FixedClock: true, Quiet: true, Database: freshSchema, Shards: shards})
		b.ResetTimer()
		res := postLoad(b, s.URL, msgs, clients)
		b.StopTimer()
		slices.Sort(res.latency)
		events := s.metric(b, `triage_unit_events_sum`)
		units := s.metric(b, `triage_unit_events_count`)
		b.ReportMetric(float64(len(msgs))/res.posted.Seconds(), "acked/s")
		b.ReportMetric(events/units, "events/unit")
		b.ReportMetric(quantileMS(res.latency, 0.50), "p50-ms")
		b.ReportMetric(quantileMS(res.latency, 0.99), "p99-ms")
	})
	b.Run("reply", daemon(benchReplyRules, "none"))
	b.Run("faq", daemon("", "faq"))
	b.Run("pgbench", func(b *testing.B) {
		url := migrated(b)
		b.ResetTimer()
		tps, lat := pgbenchRun(b, url, 0, "-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(max(1, b.N/clients)))
		b.StopTimer()
		b.ReportMetric(tps, "tx/s")
		b.ReportMetric(quantileMS(lat, 0.50), "p50-ms")
		b.ReportMetric(quantileMS(lat, 0.99), "p99-ms")
	})
	b.Run("reply-1000/s", atRate(benchReplyRules, "none"))
	b.Run("faq-1000/s", atRate("", "faq"))
	b.Run("pgbench-1000/s", func(b *testing.B) {
		url := migrated(b)
		b.ResetTimer()
		secs := (benchWarmup + max(1000, b.N)) / 1000
		_, lat := pgbenchRun(b, url, time.Second, "-c", strconv.Itoa(clients), "-j", "2", "-R", "1000", "-T", strconv.Itoa(secs))
		b.StopTimer()
		b.ReportMetric(quantileMS(lat, 0.50), "p50-ms")
		b.ReportMetric(quantileMS(lat, 0.99), "p99-ms")
		b.ReportMetric(quantileMS(lat, 0.999), "p99.9-ms")
	})
}

// TestPgbenchScript checks, untimed, that the baseline does what it says:
// each transaction adds one event, one decision and one outbox row, and
// upserts a conversation.
func TestPgbenchScript(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	url := migrated(t)
	_, lat := pgbenchRun(t, url, 0, "-c", "2", "-t", "25")
	if len(lat) != 50 {
		t.Errorf("%d latencies for 50 transactions", len(lat))
	}
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events, decisions, outbox, convs int
	if err := s.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM decisions),
		(SELECT count(*) FROM outbox), (SELECT count(*) FROM conversations WHERE state IS NOT NULL)`).Scan(&events, &decisions, &outbox, &convs); err != nil {
		t.Fatal(err)
	}
	if events != 50 || decisions != 50 || outbox != 50 || convs == 0 || convs > 50 {
		t.Errorf("50 transactions wrote %d events, %d decisions, %d outbox rows, %d conversations", events, decisions, outbox, convs)
	}
}

// TestServeReplyBenchmarkInput checks, untimed, that the reply workload
// is what it says: each webhook one decision and one reply, nothing else.
func TestServeReplyBenchmarkInput(t *testing.T) {
	const n = 100
	msgs := benchWorkload(t, n)
	s := newServeStack(t, stackOptions{Rules: benchReplyRules, Bot: "none", FixedClock: true})
	postLoad(t, s.URL, msgs, 8)
	s.waitDelivered(t, n, e2eDeadline)
	perCustomer := map[string]int{}
	for _, r := range s.wa.Requests() {
		if r.Status != http.StatusOK || r.Message.Text == nil || !strings.HasPrefix(r.Message.Text.Body, "Thanks Customer ") {
			t.Fatalf("unexpected request to the fake: %d %s", r.Status, r.Raw)
		}
		perCustomer[r.Message.To]++
	}
	want := map[string]int{}
	for _, m := range msgs {
		want[m.waID]++
	}
	if !maps.Equal(perCustomer, want) {
		t.Errorf("replies per customer %v, want %v", perCustomer, want)
	}
	if got := s.metric(t, `triage_unit_events_sum`); got != n {
		t.Errorf("%v events evaluated, want %d", got, n)
	}
	if len(s.slack.Requests()) != 0 {
		t.Error("the reply workload pinged Slack")
	}
}

// TestServeAckBenchmarkInput checks, untimed, that the ack workload sends
// nothing: each webhook is one decision, tagged, and no request leaves.
func TestServeAckBenchmarkInput(t *testing.T) {
	const n = 60
	msgs := benchWorkload(t, n)
	s := newServeStack(t, stackOptions{Rules: benchAckRules, Bot: "none", FixedClock: true})
	postLoad(t, s.URL, msgs, 8)
	if got := s.metric(t, `triage_unit_events_sum`); got != n {
		t.Errorf("%v events evaluated, want %d", got, n)
	}
	if got := s.metric(t, `triage_actions_total{outcome="applied",type="tag"}`); got != n {
		t.Errorf("%v tags applied, want %d", got, n)
	}
	if len(s.wa.Requests()) != 0 || len(s.slack.Requests()) != 0 {
		t.Error("the ack workload sent something")
	}
}
