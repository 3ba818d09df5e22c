package main

// BenchmarkServeWebhooks: signed WhatsApp webhooks POSTed over loopback by
// concurrent clients to the in-process daemon (newServeStack in
// serve_e2e_test.go: the wiring of serve.go, the real connector clients,
// the fake Cloud API and the built-in FAQ bot), measured through the whole
// path: signature, parse, submit, evaluation, the bot, evaluation of its
// answer, and the reply reaching the fake Cloud API. The same requests go,
// in the same run, to a baseline server whose handler only reads the body
// and checks the signature. docs/benchmarks.md, section 4, has figures.
//
//	go test -run='^$' -bench=ServeWebhooks -benchtime=3s ./cmd/triage/
//
// TRIAGE_BENCH_CLIENTS sets the number of concurrent clients (default 32);
// TRIAGE_BENCH_WORKERS the daemon's outbox workers (default: the server's
// default, 8, which is what serve.go runs with).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

// benchFAQQuestions are phrasings from examples/faq.yaml that the FAQ bot
// answers confidently (well over the 0.6 threshold) and that no rule of
// examples/rules takes before the bot: no human, refund, complaint or
// urgent word. TestServeWebhooksBenchmarkInput checks both.
var benchFAQQuestions = []string{
	"What are your opening hours?",
	"How long does delivery take?",
	"How can I track my order?",
	"What payment methods do you accept?",
	"How do I change my delivery address?",
	"How do I cancel my order?",
	"Do you ship internationally?",
	"Where are your stores?",
	"How can I contact you?",
	"How do I find my size?",
	"How do I use a discount code?",
	"I forgot my password",
	"Can I get an invoice?",
}

// benchHumanTexts are the two messages of a conversation that asks for a
// person: a handoff, then an honest status while waiting.
var benchHumanTexts = []string{"Can I speak to someone?", "hello?? is an agent there?"}

// benchMsg is one webhook of the load.
type benchMsg struct {
	waID  string
	body  []byte
	sig   string
	reply string // the FAQ answer expected back; "" for a handoff text
}

// benchWorkload builds n signed webhooks over n/2.6 conversations: four in
// five conversations ask the FAQ bot three different questions, the fifth
// asks for a person twice. Every message gets exactly one WhatsApp reply
// whatever order its conversation's messages are evaluated in: three bot
// turns never reach the turn limit, and both handoff texts answer either
// way round. All messages are timed within three seconds of e2eMonday.
func benchWorkload(tb testing.TB, n int) []benchMsg {
	tb.Helper()
	faq, err := bot.LoadFAQ(e2eExampleFAQ)
	if err != nil {
		tb.Fatal(err)
	}
	answers := map[string]string{}
	for _, q := range benchFAQQuestions {
		a, err := faq.Ask(context.Background(), bot.Question{Text: q})
		if err != nil || a.Confidence < 0.9 {
			tb.Fatalf("the FAQ answers %q with %+v (%v): not confident enough for the benchmark", q, a, err)
		}
		answers[q] = a.Text
	}
	msgs := make([]benchMsg, 0, n)
	for c := 0; len(msgs) < n; c++ {
		waID := fmt.Sprintf("4477%08d", c)
		var texts []string
		if c%5 == 4 {
			texts = benchHumanTexts
		} else {
			for k := range 3 {
				texts = append(texts, benchFAQQuestions[(c*3+k)%len(benchFAQQuestions)])
			}
		}
		for k, text := range texts {
			if len(msgs) == n {
				break
			}
			body := whatsapptest.TextWebhook(e2ePhoneID, waID, "Customer "+strconv.Itoa(c),
				fmt.Sprintf("wamid.bench.%d.%d", c, k), text, e2eMonday.Add(time.Duration(k)*time.Second))
			msgs = append(msgs, benchMsg{waID: waID, body: body, sig: whatsapptest.Sign(body, e2eSecret), reply: answers[text]})
		}
	}
	return msgs
}

// post sends m to the daemon's webhook as Meta does and returns the
// answer's status, its body read and closed.
func (m *benchMsg) post(hc *http.Client, url string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/whatsapp", bytes.NewReader(m.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(whatsapp.SignatureHeader, m.sig)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// loadResult is what one load run measured.
type loadResult struct {
	posted  time.Duration   // until the last webhook was accepted
	latency []time.Duration // every HTTP exchange, 503s included
	sentAt  []time.Time     // first POST of each message
	refused int             // 503 answers (queue full), each retried
}

// postLoad POSTs msgs to url with clients concurrent clients, each taking
// the next message; a 503 is retried after 5 ms, as Meta would (later).
func postLoad(tb testing.TB, url string, msgs []benchMsg, clients int) loadResult {
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	res := loadResult{sentAt: make([]time.Time, len(msgs))}
	lat := make([][]time.Duration, clients)
	var next, refused atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				m := &msgs[i]
				for {
					t0 := time.Now()
					if res.sentAt[i].IsZero() {
						res.sentAt[i] = t0
					}
					code, err := m.post(hc, url)
					if err != nil {
						tb.Errorf("webhook %d: %v", i, err)
						failed.Store(true)
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
					if code == http.StatusOK {
						break
					}
					if code != http.StatusServiceUnavailable {
						tb.Errorf("webhook %d: status %d", i, code)
						failed.Store(true)
						return
					}
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	res.posted = time.Since(start)
	for _, l := range lat {
		res.latency = append(res.latency, l...)
	}
	res.refused = int(refused.Load())
	return res
}

// quantile of sorted durations, in milliseconds.
func quantileMS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// benchEnv reads a positive integer knob from the environment.
func benchEnv(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// verifyOnly is the baseline: what any webhook receiver must do, and
// nothing else. It reads the body under the same limit and checks the
// signature the same way, then answers as the daemon does.
func verifyOnly(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > whatsapp.MaxBody {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, whatsapp.MaxBody))
	if err != nil {
		http.Error(w, "unreadable", http.StatusBadRequest)
		return
	}
	if !whatsapp.VerifySignature(body, r.Header.Get(whatsapp.SignatureHeader), e2eSecret) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
}

// waitDelivered waits until the fake Cloud API accepted n messages,
// reading the daemon's delivery counter (cheaper than copying the fake's
// request log while the clock runs).
func (s *serveStack) waitDelivered(tb testing.TB, n int, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := s.metric(tb, `triage_outbound_deliveries_total{connector="whatsapp",result="delivered"}`)
		if int(got) >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%v after the last webhook, %v of %d replies delivered", limit, got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endToEnd measures, for every 16th FAQ message, the time from its first
// POST to its answer reaching the fake Cloud API.
func (s *serveStack) endToEnd(msgs []benchMsg, sentAt []time.Time) []time.Duration {
	arrived := map[string]time.Time{}
	for _, r := range s.wa.Requests() {
		if r.Status == http.StatusOK && r.Message.Text != nil {
			arrived[r.Message.To+"\x00"+r.Message.Text.Body] = r.Time
		}
	}
	var out []time.Duration
	for i, m := range msgs {
		if i%16 != 0 || m.reply == "" {
			continue
		}
		if at, ok := arrived[m.waID+"\x00"+m.reply]; ok {
			out = append(out, at.Sub(sentAt[i]))
		}
	}
	slices.Sort(out)
	return out
}

func BenchmarkServeWebhooks(b *testing.B) {
	clients := benchEnv(b, "TRIAGE_BENCH_CLIENTS", 32)
	b.Run("daemon", func(b *testing.B) {
		msgs := benchWorkload(b, b.N)
		s := newServeStack(b, stackOptions{Bot: "faq", FixedClock: true, Quiet: true, Workers: benchEnv(b, "TRIAGE_BENCH_WORKERS", 0)})
		b.ResetTimer()
		res := postLoad(b, s.URL, msgs, clients)
		s.waitDelivered(b, len(msgs), 2*time.Minute)
		elapsed := b.Elapsed()
		b.StopTimer()
		slices.Sort(res.latency)
		e2e := s.endToEnd(msgs, res.sentAt)
		b.ReportMetric(float64(len(msgs))/elapsed.Seconds(), "webhooks/s")
		b.ReportMetric(float64(len(msgs))/res.posted.Seconds(), "accepted/s")
		b.ReportMetric(quantileMS(res.latency, 0.50), "p50-ms")
		b.ReportMetric(quantileMS(res.latency, 0.99), "p99-ms")
		b.ReportMetric(quantileMS(e2e, 0.50), "e2e-p50-ms")
		b.ReportMetric(quantileMS(e2e, 0.99), "e2e-p99-ms")
		b.ReportMetric(float64(res.refused)/float64(len(msgs)), "503s/webhook")
	})
	// One webhook at a time, each waiting for its reply at the fake: the
	// path's latency with no queue in front of it.
	b.Run("daemon-serial", func(b *testing.B) {
		msgs := benchWorkload(b, b.N)
		answered := make(chan struct{}, 1)
		s := newServeStack(b, stackOptions{Bot: "faq", FixedClock: true, Quiet: true, Answered: answered})
		tr := &http.Transport{DisableCompression: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		lat := make([]time.Duration, 0, len(msgs))
		b.ResetTimer()
		for i := range msgs {
			t0 := time.Now()
			code, err := msgs[i].post(hc, s.URL)
			if err != nil {
				b.Fatalf("webhook %d: %v", i, err)
			}
			if code != http.StatusOK {
				b.Fatalf("webhook %d: status %d", i, code)
			}
			select {
			case <-answered:
			case <-time.After(e2eDeadline):
				b.Fatalf("webhook %d: no reply within %v", i, e2eDeadline)
			}
			lat = append(lat, time.Since(t0))
		}
		elapsed := b.Elapsed()
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(len(msgs))/elapsed.Seconds(), "webhooks/s")
		b.ReportMetric(quantileMS(lat, 0.50), "e2e-p50-ms")
		b.ReportMetric(quantileMS(lat, 0.99), "e2e-p99-ms")
	})
	b.Run("verify-only", func(b *testing.B) {
		msgs := benchWorkload(b, b.N)
		hs := httptest.NewServer(http.HandlerFunc(verifyOnly))
		defer hs.Close()
		b.ResetTimer()
		res := postLoad(b, hs.URL, msgs, clients)
		elapsed := b.Elapsed()
		b.StopTimer()
		slices.Sort(res.latency)
		b.ReportMetric(float64(len(msgs))/elapsed.Seconds(), "webhooks/s")
		b.ReportMetric(quantileMS(res.latency, 0.50), "p50-ms")
		b.ReportMetric(quantileMS(res.latency, 0.99), "p99-ms")
	})
}

// TestServeWebhooksBenchmarkInput checks, untimed, that the benchmark's
// load is what it says: every webhook is accepted and gets exactly one
// reply, each FAQ question the FAQ's own answer, nothing escalates to
// Slack, and the baseline accepts the same requests.
func TestServeWebhooksBenchmarkInput(t *testing.T) {
	const n = 280 // 100 conversations, 20 of them asking for a person
	msgs := benchWorkload(t, n)
	s := newServeStack(t, stackOptions{Bot: "faq", FixedClock: true})
	res := postLoad(t, s.URL, msgs, 8)
	s.waitDelivered(t, n, e2eDeadline)

	perCustomer := map[string][]string{}
	for _, r := range s.wa.Requests() {
		if r.Status != http.StatusOK || r.Message.Text == nil {
			t.Fatalf("unexpected request to the fake: %d %s", r.Status, r.Raw)
		}
		perCustomer[r.Message.To] = append(perCustomer[r.Message.To], r.Message.Text.Body)
	}
	want := map[string][]string{}
	for _, m := range msgs {
		want[m.waID] = append(want[m.waID], m.reply)
	}
	for waID, replies := range want {
		got := perCustomer[waID]
		if len(got) != len(replies) {
			t.Errorf("%s: %d replies %q, want %d", waID, len(got), got, len(replies))
			continue
		}
		for _, r := range replies {
			if r != "" && !slices.Contains(got, r) {
				t.Errorf("%s: no reply %q in %q", waID, r, got)
			}
		}
	}
	if reqs := s.slack.Requests(); len(reqs) != 0 {
		t.Errorf("the load pinged Slack %d times", len(reqs))
	}
	if got := s.metric(t, `triage_escalations_total{reason="keyword"}`); got != 20 {
		t.Errorf("%v keyword escalations, want 20 (one per handoff conversation)", got)
	}
	if e2e := s.endToEnd(msgs, res.sentAt); len(e2e) == 0 {
		t.Error("no end-to-end sample")
	}

	hs := httptest.NewServer(http.HandlerFunc(verifyOnly))
	defer hs.Close()
	if res := postLoad(t, hs.URL, msgs, 8); res.refused != 0 || len(res.latency) != n {
		t.Errorf("baseline: %d refused, %d exchanges", res.refused, len(res.latency))
	}
}
