// Package slacktest is a fake Slack for tests: it serves incoming webhooks
// (one path per channel) and the Web API's chat.postMessage on loopback,
// records every request, and answers as Slack does unless told otherwise.
package slacktest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transports, as recorded in Request.Transport.
const (
	Webhook     = "webhook"
	PostMessage = "chat.postMessage"
)

// PostMessagePath is where the fake serves chat.postMessage; APIURL is the
// base URL to configure a client with.
const PostMessagePath = "/api/chat.postMessage"

// Request is one request the fake received.
type Request struct {
	// Transport is Webhook or PostMessage.
	Transport string
	// Channel is the webhook's channel, or the "channel" field posted to
	// chat.postMessage.
	Channel string
	// Text is the "text" field of the body.
	Text string
	// Header is the request's headers.
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// At is when the request arrived, by the server's Now.
	At time.Time
	// Status is the HTTP status the fake answered with.
	Status int
	// Delivered says whether the answer was a success, so the message
	// would show in Slack.
	Delivered bool
}

// Answer is a scripted response. A zero Status means 200; Body is sent
// exactly as given; RetryAfter, when positive, is sent as a Retry-After
// header in whole seconds; Header adds further headers (a Content-Type
// here replaces the transport's usual one).
type Answer struct {
	Status     int
	Body       string
	RetryAfter time.Duration
	Header     http.Header
}

// WebhookError is the answer an incoming webhook gives for an error: the
// status and the code as a plain-text body, for example
// WebhookError(404, "channel_not_found").
func WebhookError(status int, code string) Answer {
	return Answer{Status: status, Body: code}
}

// APIError is the answer chat.postMessage gives for an error: 200 with
// {"ok": false, "error": code}.
func APIError(code string) Answer {
	return Answer{Body: fmt.Sprintf(`{"ok":false,"error":%q}`, code)}
}

// RateLimited is Slack's 429 with a Retry-After header.
func RateLimited(after time.Duration) Answer {
	return Answer{Status: http.StatusTooManyRequests, RetryAfter: after, Body: `{"ok":false,"error":"ratelimited"}`}
}

// Server is a fake Slack. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, like "http://127.0.0.1:PORT".
	URL string
	// APIURL is the Web API base URL, URL + "/api".
	APIURL string

	srv *httptest.Server

	mu        sync.Mutex
	now       func() time.Time
	token     string
	hooks     map[string]string // path -> channel
	reqs      []Request
	script    []Answer
	perChan   map[string][]Answer
	responses int
}

// NewServer starts a fake Slack on loopback. Call Close when done.
func NewServer() *Server {
	s := &Server{
		now:     time.Now,
		hooks:   make(map[string]string),
		perChan: make(map[string][]Answer),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	s.APIURL = s.srv.URL + "/api"
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// SetNow sets the clock that stamps Request.At; tests share it with the
// client's clock to check intervals without sleeping.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetToken makes chat.postMessage require "Authorization: Bearer token",
// answering not_authed when it is missing and invalid_auth when it is
// wrong. With no token set, any bearer token is accepted.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// WebhookURL returns the incoming-webhook URL for channel, creating it on
// first use. Its path looks like Slack's: /services/T…/B…/secret.
func (s *Server) WebhookURL(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for path, ch := range s.hooks {
		if ch == channel {
			return s.URL + path
		}
	}
	path := fmt.Sprintf("/services/T00000000/B%08d/secret%d", len(s.hooks)+1, len(s.hooks)+1)
	s.hooks[path] = channel
	return s.URL + path
}

// Script queues answers for the next requests, whatever their channel,
// after any already queued. A request whose channel has its own script
// (ScriptChannel) takes from that first.
func (s *Server) Script(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, answers...)
}

// ScriptChannel queues answers for the next requests to channel.
func (s *Server) ScriptChannel(channel string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perChan[channel] = append(s.perChan[channel], answers...)
}

// Requests returns a copy of the requests received so far, in arrival
// order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	copy(out, s.reqs)
	return out
}

// Delivered returns the texts that Slack would have shown, by channel:
// the requests the fake answered with success.
func (s *Server) Delivered() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]string)
	for _, r := range s.reqs {
		if r.Delivered {
			out[r.Channel] = append(out[r.Channel], r.Text)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var msg struct {
		Channel string `json:"channel"`
		Text    string `json:"text"`
	}
	jsonErr := json.Unmarshal(body, &msg)

	s.mu.Lock()
	transport, channel := "", ""
	if r.URL.Path == PostMessagePath {
		transport, channel = PostMessage, msg.Channel
	} else if ch, ok := s.hooks[r.URL.Path]; ok {
		transport, channel = Webhook, ch
	}
	if transport == "" {
		s.mu.Unlock()
		// Slack's answer for a webhook URL it does not know.
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	req := Request{
		Transport: transport,
		Channel:   channel,
		Text:      msg.Text,
		Header:    r.Header.Clone(),
		Body:      body,
		At:        s.now(),
	}
	ans, scripted := s.next(channel)
	if !scripted {
		ans = s.answer(transport, r, msg.Channel, msg.Text, jsonErr, req.At)
	}
	req.Status = ans.status()
	req.Delivered = ans.success(transport)
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()

	ans.write(w, transport)
}

// next pops the next scripted answer for channel; s.mu is held.
func (s *Server) next(channel string) (Answer, bool) {
	if q := s.perChan[channel]; len(q) > 0 {
		s.perChan[channel] = q[1:]
		return q[0], true
	}
	if len(s.script) > 0 {
		a := s.script[0]
		s.script = s.script[1:]
		return a, true
	}
	return Answer{}, false
}

// answer is what Slack would say to an unscripted request; s.mu is held.
func (s *Server) answer(transport string, r *http.Request, channel, text string, jsonErr error, at time.Time) Answer {
	if r.Method != http.MethodPost {
		if transport == Webhook {
			return WebhookError(http.StatusBadRequest, "invalid_payload")
		}
		return APIError("invalid_request")
	}
	if transport == Webhook {
		switch {
		case jsonErr != nil:
			return WebhookError(http.StatusBadRequest, "invalid_payload")
		case text == "":
			return WebhookError(http.StatusBadRequest, "no_text")
		}
		return Answer{Body: "ok"}
	}
	auth := r.Header.Get("Authorization")
	token, bearer := strings.CutPrefix(auth, "Bearer ")
	switch {
	case !bearer || token == "":
		return APIError("not_authed")
	case s.token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.token)) != 1:
		return APIError("invalid_auth")
	case jsonErr != nil:
		return APIError("invalid_json")
	case channel == "":
		return APIError("channel_not_found")
	case text == "":
		return APIError("no_text")
	}
	s.responses++
	ts := strconv.FormatInt(at.Unix(), 10) + fmt.Sprintf(".%06d", s.responses)
	b, _ := json.Marshal(map[string]any{"ok": true, "channel": channel, "ts": ts,
		"message": map[string]string{"type": "message", "text": text, "ts": ts}})
	return Answer{Body: string(b)}
}

func (a Answer) status() int {
	if a.Status == 0 {
		return http.StatusOK
	}
	return a.Status
}

// success reports whether a client would take a as delivered.
func (a Answer) success(transport string) bool {
	if a.status()/100 != 2 {
		return false
	}
	if transport == Webhook {
		return strings.TrimSpace(a.Body) == "ok"
	}
	var r struct {
		OK bool `json:"ok"`
	}
	return json.Unmarshal([]byte(a.Body), &r) == nil && r.OK
}

func (a Answer) write(w http.ResponseWriter, transport string) {
	h := w.Header()
	if transport == Webhook {
		h.Set("Content-Type", "text/html")
	} else {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	if strings.HasPrefix(a.Body, "{") {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, vs := range a.Header {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if a.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((a.RetryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(a.status())
	_, _ = io.WriteString(w, a.Body)
}
