package httpapi

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name     string
		access   []Access
		backend  bool
		problems []string // every one must be in the error; none: valid
	}{
		{name: "valid", backend: true, access: testAccess()},
		{name: "no access entries", backend: true},
		{name: "no backend", problems: []string{"no backend"}},
		{
			name: "every problem at once", backend: true,
			access: []Access{
				{Name: "ops", Token: "secret-one", Role: "root"},
				{Name: "anita", Token: "secret-two", Role: RoleAgent},
				{Name: "svc", Role: RoleService},
				{Name: "dup", Token: "secret-one", Role: RoleAdmin},
				{Name: "norole", Token: "secret-three"},
				{Name: "spacey", Token: " secret-four", Role: RoleAdmin},
				{Name: "teams", Token: "secret-five", Role: RoleAgent, Agent: "t", Teams: []string{"support", ""}},
			},
			problems: []string{
				`access[0] (ops): role "root"`,
				"access[1] (anita): role agent names no agent id",
				"access[2] (svc): no token",
				"access[3] (dup): token is the same as access[0]'s",
				"access[4] (norole): no role",
				"access[5] (spacey): token has leading or trailing white space",
				"access[6] (teams): empty team name",
			},
		},
		{
			name: "agent id of spaces", backend: true,
			access:   []Access{{Token: "x", Role: RoleAgent, Agent: "  "}},
			problems: []string{"access[0]: role agent names no agent id"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Backend
			if tt.backend {
				b = newFakeBackend()
			}
			s, err := New(Config{Access: tt.access}, b)
			if len(tt.problems) == 0 {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid configuration")
			}
			msg := err.Error()
			for _, p := range tt.problems {
				if !strings.Contains(msg, p) {
					t.Errorf("error does not list %q:\n%s", p, msg)
				}
			}
			if got := strings.Count(msg, "\n"); got != len(tt.problems) {
				t.Errorf("error has %d problem lines, want %d:\n%s", got, len(tt.problems), msg)
			}
			for _, a := range tt.access {
				if a.Token != "" && strings.Contains(msg, strings.TrimSpace(a.Token)) {
					t.Errorf("error shows the token %q:\n%s", a.Token, msg)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.call("GET", "/healthz", "", "")
	ts.call("GET", "/healthz", "", "")
	ts.call("GET", "/v1/rules", "", "")
	ts.call("GET", "/v1/rules", tokAnita, "")
	ts.call("GET", "/nope/"+strings.Repeat("x", 10), "", "")
	ts.do(whatsapptest.FixtureRequest(webhookPath, "meta_docs_inbound_text.json", appSecret))
	ts.do(whatsapptest.FixtureRequest(webhookPath, "meta_docs_inbound_text.json", "forged"))

	checks := []struct {
		route, code string
		want        float64
	}{
		{"GET /healthz", "200", 2},
		{"GET /v1/rules", "401", 1},
		{"GET /v1/rules", "403", 1},
		{"other", "404", 1},
		{"POST /webhooks/whatsapp", "200", 1},
		{"POST /webhooks/whatsapp", "401", 1},
	}
	for _, c := range checks {
		if got := counterValue(ts.requests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("triage_http_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}

	w := ts.call("GET", "/metrics", "", "")
	if w.Code != 200 {
		t.Fatalf("GET /metrics: %d", w.Code)
	}
	text := w.Body.String()
	for _, want := range []string{
		"# TYPE triage_http_requests_total counter",
		`triage_http_requests_total{code="200",route="GET /healthz"} 2`,
		`triage_http_requests_total{code="404",route="other"} 1`,
		"# TYPE triage_webhook_payloads_total counter",
		`triage_webhook_payloads_total{result="accepted"} 1`,
		`triage_webhook_payloads_total{result="bad_signature"} 1`,
		`triage_webhook_payloads_total{result="too_large"} 0`,
		`triage_webhook_payloads_total{result="malformed"} 0`,
		`triage_webhook_payloads_total{result="unavailable"} 0`,
		"# TYPE triage_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "/nope") {
		t.Errorf("an unrouted path became a label value:\n%s", text)
	}
}

func TestMetricsRegistry(t *testing.T) {
	t.Run("shared registry", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		for range 2 {
			if _, err := New(Config{Registry: reg}, newFakeBackend()); err != nil {
				t.Fatalf("second server on one registry: %v", err)
			}
		}
	})
	t.Run("separate gatherer", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		other := prometheus.NewRegistry()
		other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "from_elsewhere_total", Help: "x"}))
		s, err := New(Config{Registry: reg, Gatherer: other}, newFakeBackend())
		if err != nil {
			t.Fatal(err)
		}
		ts := &testServer{Server: s, h: s.Handler()}
		if body := ts.call("GET", "/metrics", "", "").Body.String(); !strings.Contains(body, "from_elsewhere_total") {
			t.Errorf("/metrics does not serve cfg.Gatherer:\n%s", body)
		}
	})
	t.Run("registerer that does not gather", func(t *testing.T) {
		reg := prometheus.WrapRegistererWith(prometheus.Labels{"a": "b"}, prometheus.NewRegistry())
		if _, err := New(Config{Registry: reg}, newFakeBackend()); err == nil || !strings.Contains(err.Error(), "gatherer") {
			t.Errorf("err = %v, want a missing gatherer", err)
		}
	})
}

// TestConcurrentRequests runs the handler from many goroutines under the
// race detector.
func TestConcurrentRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				ts.do(whatsapptest.FixtureRequest(webhookPath, "meta_docs_inbound_text.json", appSecret))
			case 1:
				ts.call("POST", "/v1/events", tokService, `{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"}`)
			case 2:
				ts.call("GET", "/v1/conversations", tokAnita, "")
			case 3:
				ts.call("GET", "/metrics", "", "")
			}
		})
	}
	wg.Wait()
	if got := len(ts.b.submitted()); got != 8 {
		t.Errorf("%d submissions, want 8", got)
	}
}
