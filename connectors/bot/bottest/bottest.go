// Package bottest provides a fake HTTP bot for tests of code that asks the
// bot: an httptest server on the loopback interface that speaks the
// bot.HTTPBot contract, answers from a script and records what it was
// asked.
package bottest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/bot"
)

// DefaultAnswer is what a new Server answers to a text it has no script
// for: a valid answer with confidence 0.
var DefaultAnswer = bot.Answer{Text: "Sorry, I don't know.", Confidence: 0}

// Server is a fake bot. Its zero value is not usable; call New or Start.
//
// For each POST it decodes the question strictly (an unknown field, a
// wrong type or a method other than POST is answered 400 or 405, as a
// picky bot would), records it, and then, in this order: fails with the
// status set by Fail, sends the raw body set by Raw, or answers with the
// Answer scripted for the question's exact text, else the default. Delay
// holds every response back; Header adds response headers. All methods
// are safe for concurrent use.
type Server struct {
	// URL is the address to give bot.HTTPBot.
	URL string

	srv  *httptest.Server
	done chan struct{} // closed by Close, releasing delayed handlers

	mu        sync.Mutex
	answers   map[string]bot.Answer
	def       bot.Answer
	delay     time.Duration
	status    int
	header    http.Header
	rawStatus int
	raw       []byte
	questions []bot.Question
	requests  []Request
	closeOnce sync.Once
}

// Request is one request the Server received, as sent.
type Request struct {
	Method string
	Header http.Header
	Body   []byte
}

// New starts a Server on the loopback interface and closes it when the
// test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := Start()
	tb.Cleanup(s.Close)
	return s
}

// Start starts a Server on the loopback interface; the caller closes it.
// Tests use New, which closes it for them.
func Start() *Server {
	s := &Server{answers: map[string]bot.Answer{}, def: DefaultAnswer, done: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server, first releasing any response held back by Delay.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Answer scripts a for questions whose text is exactly text.
func (s *Server) Answer(text string, a bot.Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[text] = a
}

// Default sets the answer to texts without a script.
func (s *Server) Default(a bot.Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = a
}

// Delay holds every response back for d, or until the client gives up or
// the server closes, whichever comes first. A long delay with a short
// client timeout makes a timeout without waiting the delay out.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Fail makes every response carry status with a short plain-text body;
// 0 goes back to answering.
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Header adds a header to every response from now on, such as a
// Retry-After to go with Fail(http.StatusTooManyRequests).
func (s *Server) Header(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.header == nil {
		s.header = http.Header{}
	}
	s.header.Add(key, value)
}

// Raw makes every response carry status and body as given, for answers
// that break the contract; a nil body goes back to answering.
func (s *Server) Raw(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rawStatus, s.raw = status, bytes.Clone(body)
}

// Questions returns the questions received so far, in order.
func (s *Server) Questions() []bot.Question {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bot.Question, len(s.questions))
	copy(out, s.questions)
	return out
}

// Requests returns the requests received so far, in order, including the
// ones refused.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	var q bot.Question
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		http.Error(w, "bad question: "+err.Error(), http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	s.questions = append(s.questions, q)
	delay, status, rawStatus, raw, header := s.delay, s.status, s.rawStatus, s.raw, s.header.Clone()
	a, ok := s.answers[q.Text]
	if !ok {
		a = s.def
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	switch {
	case status != 0:
		http.Error(w, "fake bot failing with "+http.StatusText(status), status)
	case raw != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rawStatus)
		_, _ = w.Write(raw)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}
}
