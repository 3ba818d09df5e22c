package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

const webhookPath = "/webhooks/whatsapp"

func TestHandshake(t *testing.T) {
	tests := []struct {
		name   string
		cfgTok string // the configured verify token
		query  string
		code   int
		body   string
	}{
		{"ok", verifyToken, "hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1158201444", 200, "1158201444"},
		{"wrong token", verifyToken, "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444", 403, ""},
		{"token prefix", verifyToken, "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1", 403, ""},
		{"wrong mode", verifyToken, "hub.mode=unsubscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1", 403, ""},
		{"no mode", verifyToken, "hub.verify_token=" + verifyToken + "&hub.challenge=1", 403, ""},
		{"no challenge", verifyToken, "hub.mode=subscribe&hub.verify_token=" + verifyToken, 403, ""},
		{"no query", verifyToken, "", 403, ""},
		{"none configured", "", "hub.mode=subscribe&hub.verify_token=&hub.challenge=1", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) { c.WhatsApp.VerifyToken = tt.cfgTok })
			w := ts.call("GET", webhookPath+"?"+tt.query, "", "")
			if w.Code != tt.code {
				t.Fatalf("code = %d, want %d (body %q)", w.Code, tt.code, w.Body.String())
			}
			if tt.code == 200 {
				if w.Body.String() != tt.body {
					t.Errorf("body = %q, want the challenge %q", w.Body.String(), tt.body)
				}
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", ct)
				}
			} else if strings.Contains(w.Body.String(), "1158201444") {
				t.Errorf("refused handshake echoed the challenge: %q", w.Body.String())
			}
		})
	}

	t.Run("helper request", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.do(whatsapptest.HandshakeRequest(webhookPath, verifyToken, "abc<script>"))
		if w.Code != 200 || w.Body.String() != "abc<script>" {
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("the echoed challenge must not be sniffed as HTML")
		}
	})
}

// TestWebhookFixtures posts every real fixture, signed, and checks that
// what reaches the Backend is exactly what Parse makes of the raw bytes.
func TestWebhookFixtures(t *testing.T) {
	names := whatsapptest.Fixtures()
	if len(names) < 5 {
		t.Fatalf("only %d fixtures: %v", len(names), names)
	}
	var events, statuses int
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			w := ts.do(whatsapptest.FixtureRequest(webhookPath, name, appSecret))
			if w.Code != 200 {
				t.Fatalf("code = %d, want 200 (body %q)", w.Code, w.Body.String())
			}
			if got := strings.TrimSpace(w.Body.String()); got != `{"ok":true}` {
				t.Errorf("body = %q, want {\"ok\":true}", got)
			}
			want, err := whatsapp.Parse(whatsapptest.Fixture(name), "106540352242922")
			if err != nil {
				t.Fatal(err)
			}
			subs := ts.b.submitted()
			if len(want.Events) == 0 {
				if len(subs) != 0 {
					t.Errorf("Submit called for a body without events: %+v", subs)
				}
			} else {
				if len(subs) != 1 {
					t.Fatalf("%d Submit calls, want 1", len(subs))
				}
				if subs[0].by != "whatsapp" {
					t.Errorf("submitted by %q, want whatsapp", subs[0].by)
				}
				if !reflect.DeepEqual(subs[0].events, want.Events) {
					t.Errorf("submitted %+v\nwant %+v", subs[0].events, want.Events)
				}
				events += len(subs[0].events)
			}
			ts.b.mu.Lock()
			got := ts.b.statuses
			ts.b.mu.Unlock()
			if len(want.Statuses) == 0 {
				if len(got) != 0 {
					t.Errorf("Statuses called for a body without statuses: %+v", got)
				}
			} else {
				if len(got) != 1 || !reflect.DeepEqual(got[0], want.Statuses) {
					t.Errorf("statuses %+v, want one call with %+v", got, want.Statuses)
				}
				statuses += len(got[0])
			}
			if v := counterValue(ts.payloads.WithLabelValues(ResultAccepted)); v != 1 {
				t.Errorf("accepted payloads = %v, want 1", v)
			}
		})
	}
	if events == 0 || statuses == 0 {
		t.Errorf("fixtures gave %d events and %d statuses; want some of each", events, statuses)
	}

	t.Run("inbound text content", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do(whatsapptest.FixtureRequest(webhookPath, "meta_docs_inbound_text.json", appSecret))
		subs := ts.b.submitted()
		if len(subs) != 1 || len(subs[0].events) != 1 {
			t.Fatalf("submitted %+v, want one event", subs)
		}
		ev := subs[0].events[0]
		if ev.ID != "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=" ||
			ev.Type != "message.received" ||
			ev.Conversation != "wa:106540352242922:16505551234" ||
			ev.Text != "Does it come in another color?" {
			t.Errorf("event = %+v", ev)
		}
	})

	t.Run("built body", func(t *testing.T) {
		ts := newTestServer(t, nil)
		at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
		body := whatsapptest.TextWebhook("106540352242922", "4915112345678", "Jo", "wamid.X1", "I want a human", at)
		w := ts.do(whatsapptest.SignedRequest(webhookPath, body, appSecret))
		subs := ts.b.submitted()
		if w.Code != 200 || len(subs) != 1 || subs[0].events[0].Text != "I want a human" || !subs[0].events[0].At.Equal(at) {
			t.Fatalf("got %d, submitted %+v", w.Code, subs)
		}
	})
}

// TestWebhookRefused posts bodies that must not reach the Backend.
func TestWebhookRefused(t *testing.T) {
	fixture := whatsapptest.Fixture("meta_docs_inbound_text.json")
	big := append(bytes.Repeat([]byte(" "), whatsapp.MaxBody), fixture...) // valid JSON, one byte (and more) too long
	tests := []struct {
		name   string
		secret string // configured app secret
		req    func() *http.Request
		code   int
		result string
	}{
		{"forged signature", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, fixture, "not-the-secret")
		}, 401, ResultBadSignature},
		{"missing header", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, fixture, "")
		}, 401, ResultBadSignature},
		{"tampered body", appSecret, func() *http.Request {
			r := whatsapptest.SignedRequest(webhookPath, fixture, appSecret)
			tampered := bytes.Replace(fixture, []byte("another color"), []byte("a refund now!"), 1)
			r.Body = io.NopCloser(bytes.NewReader(tampered))
			return r
		}, 401, ResultBadSignature},
		{"sha1 header", appSecret, func() *http.Request {
			r := whatsapptest.SignedRequest(webhookPath, fixture, appSecret)
			r.Header.Set("X-Hub-Signature-256", strings.Replace(r.Header.Get("X-Hub-Signature-256"), "sha256=", "sha1=", 1))
			return r
		}, 401, ResultBadSignature},
		{"oversized, declared", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, big, appSecret)
		}, 413, ResultTooLarge},
		{"oversized, chunked", appSecret, func() *http.Request {
			r := whatsapptest.SignedRequest(webhookPath, big, appSecret)
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(big))
			return r
		}, 413, ResultTooLarge},
		{"oversized by one byte", appSecret, func() *http.Request {
			body := append(bytes.Repeat([]byte(" "), whatsapp.MaxBody+1-len(fixture)), fixture...)
			r := whatsapptest.SignedRequest(webhookPath, body, appSecret)
			r.ContentLength = -1
			return r
		}, 413, ResultTooLarge},
		{"malformed JSON", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, []byte(`{"object":"whatsapp_business_account","entry":[`), appSecret)
		}, 400, ResultMalformed},
		{"not a whatsapp webhook", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, []byte(`{"object":"page","entry":[]}`), appSecret)
		}, 400, ResultMalformed},
		{"empty body", appSecret, func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, nil, appSecret)
		}, 400, ResultMalformed},
		{"no app secret configured, signed", "", func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, fixture, appSecret)
		}, 503, ResultUnavailable},
		{"no app secret configured, unsigned", "", func() *http.Request {
			return whatsapptest.SignedRequest(webhookPath, fixture, "")
		}, 503, ResultUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) { c.WhatsApp.AppSecret = tt.secret })
			w := ts.do(tt.req())
			if w.Code != tt.code {
				t.Fatalf("code = %d, want %d (body %q)", w.Code, tt.code, w.Body.String())
			}
			errorOf(t, w)
			ts.b.nothingSubmitted(t)
			for _, r := range webhookResults {
				want := 0.0
				if r == tt.result {
					want = 1
				}
				if got := counterValue(ts.payloads.WithLabelValues(r)); got != want {
					t.Errorf("triage_webhook_payloads_total{result=%q} = %v, want %v", r, got, want)
				}
			}
			if tt.secret == "" && !strings.Contains(ts.log.String(), "no app secret") {
				t.Errorf("the log does not say why the webhook is refused:\n%s", ts.log)
			}
		})
	}
}

func TestWebhookBackendFailure(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		edit    func(*fakeBackend)
	}{
		{"submit", "meta_docs_inbound_text.json", func(b *fakeBackend) { b.submitErr = errors.New("database down") }},
		{"statuses", "meta_docs_status_sent.json", func(b *fakeBackend) { b.statusesErr = errors.New("database down") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			tt.edit(ts.b)
			w := ts.do(whatsapptest.FixtureRequest(webhookPath, tt.fixture, appSecret))
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("code = %d, want 503 so that Meta retries", w.Code)
			}
			if msg := errorOf(t, w); strings.Contains(msg, "database") {
				t.Errorf("the answer shows the internal error: %q", msg)
			}
			if got := counterValue(ts.payloads.WithLabelValues(ResultUnavailable)); got != 1 {
				t.Errorf("unavailable payloads = %v, want 1", got)
			}
			if got := counterValue(ts.payloads.WithLabelValues(ResultAccepted)); got != 0 {
				t.Errorf("accepted payloads = %v, want 0", got)
			}
		})
	}
}

// TestWebhookSkippedItemsLogged checks that items Parse leaves out are
// logged while the body is still accepted.
func TestWebhookSkippedItemsLogged(t *testing.T) {
	ts := newTestServer(t, nil)
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",
		"value":{"metadata":{"phone_number_id":"1"},"messages":[{"from":"49","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}]}]}`)
	w := ts.do(whatsapptest.SignedRequest(webhookPath, body, appSecret))
	if w.Code != 200 {
		t.Fatalf("code = %d", w.Code)
	}
	ts.b.nothingSubmitted(t)
	if !strings.Contains(ts.log.String(), "message without id") {
		t.Errorf("skipped item not logged:\n%s", ts.log)
	}
}

// FuzzWebhook posts arbitrary signed bodies: the server must answer 200 or
// 400, never panic, and submit nothing unless it answered 200.
func FuzzWebhook(f *testing.F) {
	for _, name := range whatsapptest.Fixtures() {
		f.Add(whatsapptest.Fixture(name))
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":null}]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > whatsapp.MaxBody {
			return
		}
		b := newFakeBackend()
		s, err := New(Config{WhatsApp: WhatsAppConfig{AppSecret: appSecret}}, b)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, whatsapptest.SignedRequest(webhookPath, body, appSecret))
		switch w.Code {
		case 200:
		case 400:
			b.nothingSubmitted(t)
		default:
			t.Fatalf("code %d for a signed body", w.Code)
		}
	})
}

// TestWebhookMaxBody checks the limit's edge: a body of exactly
// whatsapp.MaxBody bytes is read, parsed and submitted.
func TestWebhookMaxBody(t *testing.T) {
	fixture := whatsapptest.Fixture("meta_docs_inbound_text.json")
	body := append(bytes.Repeat([]byte(" "), whatsapp.MaxBody-len(fixture)), fixture...)
	for _, chunked := range []bool{false, true} {
		ts := newTestServer(t, nil)
		r := whatsapptest.SignedRequest(webhookPath, body, appSecret)
		if chunked {
			r.ContentLength = -1
		}
		if w := ts.do(r); w.Code != 200 {
			t.Fatalf("chunked %v: code = %d, want 200 (body %q)", chunked, w.Code, w.Body.String())
		}
		if n := len(ts.b.submitted()); n != 1 {
			t.Errorf("chunked %v: %d submissions, want 1", chunked, n)
		}
	}
}
