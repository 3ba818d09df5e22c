package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/bot/bottest"
	"github.com/triage-dev/triage/schemas"
)

var question = bot.Question{
	Conversation: "wa:447700900123",
	Contact:      schemas.Contact{ID: "447700900123", Name: "Maya Patel", Language: "en", Phone: "+447700900123"},
	Text:         "Where is my parcel?",
	History: []bot.Turn{
		{From: bot.FromCustomer, Text: "Hi", At: time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)},
		{From: bot.FromBot, Text: "Hello! How can I help?", At: time.Date(2025, 3, 4, 9, 0, 2, 0, time.UTC)},
	},
}

func TestHTTPBotAnswers(t *testing.T) {
	srv := bottest.New(t)
	want := bot.Answer{Text: "It left our warehouse this morning.", Confidence: 0.82, Topic: "tracking", Resolved: true}
	srv.Answer(question.Text, want)
	b := &bot.HTTPBot{URL: srv.URL, Timeout: 5 * time.Second}

	got, err := b.Ask(context.Background(), question)
	if err != nil {
		t.Fatalf("Ask: %v", err)
	}
	if got != want {
		t.Errorf("answer = %+v, want %+v", got, want)
	}
	qs := srv.Questions()
	if len(qs) != 1 || !reflect.DeepEqual(qs[0], question) {
		t.Errorf("bot was asked %+v, want [%+v]", qs, question)
	}

	// A text without a script gets the default answer, which is valid.
	other := question
	other.Text = "something else"
	got, err = b.Ask(context.Background(), other)
	if err != nil || got != bottest.DefaultAnswer {
		t.Errorf("unscripted text: %+v, %v; want %+v", got, err, bottest.DefaultAnswer)
	}
}

// TestHTTPBotRequestShape pins the wire format: the exact JSON keys of the
// body and the headers, so that a bot written against the spec works.
func TestHTTPBotRequestShape(t *testing.T) {
	srv := bottest.New(t)
	b := &bot.HTTPBot{URL: srv.URL + "/answer"}
	if _, err := b.Ask(context.Background(), question); err != nil {
		t.Fatal(err)
	}
	noHistory := bot.Question{Conversation: "c2", Text: "hello"}
	if _, err := b.Ask(context.Background(), noHistory); err != nil {
		t.Fatal(err)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[0].Method != http.MethodPost {
		t.Errorf("method %s, want POST", reqs[0].Method)
	}
	if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	wantBody := `{
		"conversation": "wa:447700900123",
		"contact": {"id": "447700900123", "name": "Maya Patel", "language": "en", "phone": "+447700900123"},
		"text": "Where is my parcel?",
		"history": [
			{"from": "customer", "text": "Hi", "at": "2025-03-04T09:00:00Z"},
			{"from": "bot", "text": "Hello! How can I help?", "at": "2025-03-04T09:00:02Z"}
		]
	}`
	sameJSON(t, reqs[0].Body, wantBody)
	// No history is an empty list, not null, and an empty contact is {}.
	sameJSON(t, reqs[1].Body, `{"conversation": "c2", "contact": {}, "text": "hello", "history": []}`)
}

func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
}

func TestHTTPBotTimeout(t *testing.T) {
	srv := bottest.New(t)
	srv.Delay(time.Minute) // released as soon as the client gives up
	b := &bot.HTTPBot{URL: srv.URL, Timeout: 50 * time.Millisecond}

	start := time.Now()
	_, err := b.Ask(context.Background(), question)
	if err == nil {
		t.Fatal("Ask succeeded against a bot that never answers")
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("Ask took %v with a 50ms timeout", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if !bot.Retryable(err) {
		t.Errorf("a timeout is not retryable: %v", err)
	}
	if !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("error %q does not say it timed out", err)
	}
	var be *bot.Error
	if !errors.As(err, &be) || be.StatusCode != 0 {
		t.Errorf("error %#v: want *bot.Error with StatusCode 0", err)
	}
}

// TestHTTPBotCallerDeadline checks that a deadline of the caller's context
// is obeyed too, and is not reported as the bot's own timeout.
func TestHTTPBotCallerDeadline(t *testing.T) {
	srv := bottest.New(t)
	srv.Delay(time.Minute)
	b := &bot.HTTPBot{URL: srv.URL, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := b.Ask(ctx, question)
	if !errors.Is(err, context.DeadlineExceeded) || !bot.Retryable(err) {
		t.Fatalf("error %v: want a retryable deadline error", err)
	}
	if strings.Contains(err.Error(), "no answer within") {
		t.Errorf("error %q blames the bot's timeout for the caller's deadline", err)
	}
}

func TestHTTPBotStatuses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		retryable bool
	}{
		{http.StatusInternalServerError, true},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusTooManyRequests, true},
		{http.StatusRequestTimeout, true},
		{http.StatusBadRequest, false},
		{http.StatusUnauthorized, false},
		{http.StatusNotFound, false},
		{http.StatusUnprocessableEntity, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := bottest.New(t)
			srv.Fail(tc.status)
			b := &bot.HTTPBot{URL: srv.URL}
			a, err := b.Ask(context.Background(), question)
			if err == nil {
				t.Fatalf("status %d: got answer %+v, want an error", tc.status, a)
			}
			var be *bot.Error
			if !errors.As(err, &be) || be.StatusCode != tc.status {
				t.Fatalf("error %#v: want *bot.Error with StatusCode %d", err, tc.status)
			}
			if got := bot.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable = %v, want %v (%v)", got, tc.retryable, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("status %d", tc.status)) || !strings.Contains(err.Error(), "fake bot failing") {
				t.Errorf("error %q should give the status and the start of the body", err)
			}
			if errors.Is(err, bot.ErrMalformedAnswer) {
				t.Errorf("a status error is not a malformed answer: %v", err)
			}
		})
	}
}

func TestHTTPBotRetryAfter(t *testing.T) {
	srv := bottest.New(t)
	srv.Fail(http.StatusTooManyRequests)
	srv.Header("Retry-After", "7")
	_, err := (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
	var be *bot.Error
	if !errors.As(err, &be) || !be.Retryable() || be.RetryAfter() != 7*time.Second {
		t.Fatalf("error %v: want retryable with RetryAfter 7s", err)
	}

	srv = bottest.New(t)
	srv.Fail(http.StatusServiceUnavailable)
	srv.Header("Retry-After", "999999999")
	_, err = (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
	if !errors.As(err, &be) || be.RetryAfter() != time.Hour {
		t.Errorf("error %v: a huge Retry-After should be capped at an hour", err)
	}

	srv = bottest.New(t)
	srv.Fail(http.StatusBadRequest)
	srv.Header("Retry-After", "7")
	_, err = (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
	if !errors.As(err, &be) || be.Retryable() || be.RetryAfter() != 0 {
		t.Errorf("error %v: a permanent error has no RetryAfter", err)
	}
}

func TestHTTPBotMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, body, wantErr string
	}{
		{"not JSON", `<html>oops</html>`, "not a JSON answer object"},
		{"truncated", `{"text": "hi", "confidence": 0.`, "not a JSON answer object"},
		{"a list", `[{"text": "hi", "confidence": 0.5}]`, "not a JSON answer object"},
		{"confidence as a string", `{"text": "hi", "confidence": "0.9"}`, "not a JSON answer object"},
		{"confidence above 1", `{"text": "hi", "confidence": 1.7}`, "confidence 1.7 is outside 0..1"},
		{"confidence below 0", `{"text": "hi", "confidence": -0.1}`, "confidence -0.1 is outside 0..1"},
		{"missing confidence", `{"text": "hi", "topic": "x"}`, "missing confidence"},
		{"null confidence", `{"text": "hi", "confidence": null}`, "missing confidence"},
		{"missing text", `{"confidence": 0.9}`, "missing text"},
		{"blank text", `{"text": "  \n", "confidence": 0.9}`, "text is empty"},
		{"empty body", ``, "not a JSON answer object"},
		{"two objects", `{"text": "a", "confidence": 0.5} {"text": "b", "confidence": 0.5}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bottest.New(t)
			srv.Raw(http.StatusOK, []byte(tc.body))
			a, err := (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
			if err == nil {
				t.Fatalf("got answer %+v, want an error", a)
			}
			if !errors.Is(err, bot.ErrMalformedAnswer) {
				t.Errorf("error %v does not wrap ErrMalformedAnswer", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if bot.Retryable(err) {
				t.Errorf("a malformed answer is retryable: %v", err)
			}
			if a != (bot.Answer{}) {
				t.Errorf("answer %+v returned with the error", a)
			}
		})
	}
}

func TestHTTPBotLenientAnswer(t *testing.T) {
	// Topic and resolved may be left out, and a bot may send more fields.
	srv := bottest.New(t)
	srv.Raw(http.StatusOK, []byte(`{"text": "Hi!", "confidence": 1, "model": "v3", "latency_ms": 12}`))
	got, err := (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
	if want := (bot.Answer{Text: "Hi!", Confidence: 1}); err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
}

func TestHTTPBotNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := (&bot.HTTPBot{URL: url, Timeout: 5 * time.Second}).Ask(context.Background(), question)
	if err == nil || !bot.Retryable(err) {
		t.Fatalf("error %v: want a retryable network error", err)
	}
}

func TestHTTPBotBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9000/answer", "ftp://example.com/x", "http://"} {
		_, err := (&bot.HTTPBot{URL: u}).Ask(context.Background(), question)
		if err == nil || bot.Retryable(err) {
			t.Errorf("URL %q: error %v, want a permanent error", u, err)
		}
	}
}

func TestHTTPBotRedactsURL(t *testing.T) {
	srv := bottest.New(t)
	srv.Fail(http.StatusForbidden)
	u := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/answer?key=s3cret"
	_, err := (&bot.HTTPBot{URL: u}).Ask(context.Background(), question)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q leaks a secret of the URL", err)
	}
	srv.Close() // a network error, whose message the HTTP client writes
	_, err = (&bot.HTTPBot{URL: u}).Ask(context.Background(), question)
	if err == nil || !bot.Retryable(err) {
		t.Fatalf("error %v: want a retryable network error", err)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q leaks a secret of the URL", err)
	}
}

func TestNotConfident(t *testing.T) {
	want := bot.Answer{Text: "", Confidence: 0, Topic: "bot_error", Resolved: false}
	if got := bot.NotConfident(errors.New("boom")); got != want {
		t.Errorf("NotConfident = %+v, want %+v", got, want)
	}
	if got := bot.NotConfident(nil); got != want {
		t.Errorf("NotConfident(nil) = %+v, want %+v", got, want)
	}
	// It is what a caller sends on after a failure: below any threshold.
	srv := bottest.New(t)
	srv.Fail(http.StatusInternalServerError)
	a, err := (&bot.HTTPBot{URL: srv.URL}).Ask(context.Background(), question)
	if err == nil {
		t.Fatal("want an error")
	}
	if a = bot.NotConfident(err); a.Confidence != 0 || a.Resolved {
		t.Errorf("after a failure the answer is %+v", a)
	}
}

func TestRetryable(t *testing.T) {
	if bot.Retryable(nil) || bot.Retryable(errors.New("plain")) {
		t.Error("an error that does not say is not retryable")
	}
	if bot.Retryable(fmt.Errorf("ask: %w", context.Canceled)) {
		t.Error("a bare context error is not a bot.Error")
	}
}

func TestAnswerValidate(t *testing.T) {
	for _, tc := range []struct {
		a  bot.Answer
		ok bool
	}{
		{bot.Answer{Text: "x", Confidence: 0}, true},
		{bot.Answer{Text: "x", Confidence: 1}, true},
		{bot.Answer{Text: "x", Confidence: 1.0000001}, false},
		{bot.Answer{Text: "", Confidence: 0.5}, false},
		{bot.NotConfident(nil), false}, // a stand-in, never a bot's answer
	} {
		if err := tc.a.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tc.a, err, tc.ok)
		}
	}
}

func TestNew(t *testing.T) {
	b, err := bot.New(bot.Config{})
	if b != nil || err != nil {
		t.Errorf("empty config: %v, %v; want no bot", b, err)
	}
	b, err = bot.New(bot.Config{URL: "http://127.0.0.1:9000/answer", Timeout: time.Second})
	if hb, ok := b.(*bot.HTTPBot); err != nil || !ok || hb.Timeout != time.Second {
		t.Errorf("url config: %#v, %v", b, err)
	}
	b, err = bot.New(bot.Config{FAQ: "../../examples/faq.yaml"})
	if _, ok := b.(*bot.FAQ); err != nil || !ok {
		t.Errorf("faq config: %#v, %v", b, err)
	}
	for _, cfg := range []bot.Config{
		{URL: "http://127.0.0.1:9000/answer", FAQ: "../../examples/faq.yaml"},
		{URL: "not a url"},
		{URL: "http://127.0.0.1:9000/answer", Timeout: -time.Second},
		{FAQ: "testdata/does-not-exist.yaml"},
	} {
		if b, err := bot.New(cfg); err == nil {
			t.Errorf("New(%+v) = %#v, want an error", cfg, b)
		}
	}
}
