package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/schemas"
)

// Test credentials. None of them may ever appear in a log.
const (
	appSecret   = "test_app_secret"
	verifyToken = "verify-me-please"

	tokAdmin      = "tok-admin-0123456789"
	tokSupervisor = "tok-supervisor-0123456789"
	tokService    = "tok-service-0123456789"
	tokAnita      = "tok-anita-0123456789"
	tokBob        = "tok-bob-0123456789"
)

// testAccess is the access list of the test servers.
func testAccess() []Access {
	return []Access{
		{Name: "ops", Token: tokAdmin, Role: RoleAdmin},
		{Name: "lead", Token: tokSupervisor, Role: RoleSupervisor, Agent: "sam"},
		{Name: "bot", Token: tokService, Role: RoleService},
		{Name: "anita", Token: tokAnita, Role: RoleAgent, Agent: "anita", Teams: []string{"support", "vip"}},
		{Token: tokBob, Role: RoleAgent, Agent: "bob", Teams: []string{"billing"}},
	}
}

// submission is one Submit call.
type submission struct {
	events []schemas.Event
	by     string
}

// fakeBackend records what the server hands it and answers from fields.
type fakeBackend struct {
	mu          sync.Mutex
	submits     []submission
	statuses    [][]whatsapp.Status
	filters     []Filter
	reloads     int
	convs       map[string]ConversationView
	list        []ConversationSummary
	rules       RulesStatus
	submitErr   error
	statusesErr error
	convErr     error
	reloadErr   error
	afterReload RulesStatus
	readyErr    error
	panicOn     string
	dead        []DeadDelivery
	deadLimit   int
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{convs: map[string]ConversationView{}}
}

func (f *fakeBackend) Submit(ctx context.Context, events []schemas.Event, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicOn == "submit" {
		panic("boom")
	}
	if f.submitErr != nil {
		return f.submitErr
	}
	f.submits = append(f.submits, submission{slices.Clone(events), by})
	return nil
}

func (f *fakeBackend) Statuses(ctx context.Context, statuses []whatsapp.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusesErr != nil {
		return f.statusesErr
	}
	f.statuses = append(f.statuses, slices.Clone(statuses))
	return nil
}

func (f *fakeBackend) Conversation(ctx context.Context, id string) (ConversationView, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.convErr != nil {
		return ConversationView{}, false, f.convErr
	}
	v, ok := f.convs[id]
	return v, ok, nil
}

func (f *fakeBackend) Conversations(ctx context.Context, flt Filter) ([]ConversationSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	if f.convErr != nil {
		return nil, f.convErr
	}
	var out []ConversationSummary
	for _, c := range f.list {
		if c.ID > flt.After && (flt.Limit == 0 || len(out) < flt.Limit) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeBackend) Rules(ctx context.Context) RulesStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules
}

func (f *fakeBackend) Reload(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if f.reloadErr != nil {
		f.rules.OK = false
		f.rules.LastError = f.afterReload.LastError
		f.rules.Problems = f.afterReload.Problems
		return f.reloadErr
	}
	f.rules = f.afterReload
	return nil
}

func (f *fakeBackend) DeadDeliveries(ctx context.Context, limit int) ([]DeadDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadLimit = limit
	return f.dead, nil
}

func (f *fakeBackend) Ready(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

// submitted returns every Submit call so far.
func (f *fakeBackend) submitted() []submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.submits)
}

// nothingSubmitted fails the test when the backend received anything.
func (f *fakeBackend) nothingSubmitted(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.submits) != 0 || len(f.statuses) != 0 {
		t.Errorf("backend received %d Submit and %d Statuses calls, want none: %+v %+v",
			len(f.submits), len(f.statuses), f.submits, f.statuses)
	}
}

// testServer is a Server over a fakeBackend, with its registry and log.
type testServer struct {
	*Server
	b   *fakeBackend
	reg *prometheus.Registry
	log *bytes.Buffer
	h   http.Handler
}

// newTestServer builds a server with the test access list, app secret and
// verify token; edit, when not nil, changes the configuration first.
func newTestServer(t *testing.T, edit func(*Config)) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	cfg := Config{
		WhatsApp: WhatsAppConfig{AppSecret: appSecret, VerifyToken: verifyToken, BusinessNumber: "106540352242922"},
		Access:   testAccess(),
		Registry: reg,
		Logger:   slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	b := newFakeBackend()
	s, err := New(cfg, b)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testServer{Server: s, b: b, reg: reg, log: &logs, h: s.Handler()}
}

// do serves r and returns the recorded answer.
func (ts *testServer) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ts.h.ServeHTTP(w, r)
	return w
}

// call serves method target with body and the bearer token, when not "".
func (ts *testServer) call(method, target, token, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return ts.do(r)
}

// syncWriter serializes writes of concurrent handlers to a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// errorOf decodes a JSON error answer, failing the test when it is not one.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %q)", ct, w.Body.String())
	}
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Errorf("body %q is not {\"error\": \"...\"}: %v", w.Body.String(), err)
	}
	return e.Error
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
