package slack_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/slack"
	"github.com/triage-dev/triage/connectors/slack/slacktest"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fakeClock stands still until After is called. With block false, After
// moves the clock forward by d and fires at once; with block true, it
// reports d on waiting and never fires.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waits   []time.Duration
	block   bool
	waiting chan time.Duration
}

func newClock() *fakeClock {
	return &fakeClock{now: t0, waiting: make(chan time.Duration, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	if c.block {
		c.waiting <- d
		return make(chan time.Time)
	}
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// setup starts a fake Slack sharing clk, with a webhook for
// "#support-urgent" and the bot token "xoxb-test" for everything else.
func setup(t *testing.T, clk *fakeClock) (*slacktest.Server, *slack.Client) {
	t.Helper()
	srv := slacktest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetNow(clk.Now)
	srv.SetToken("xoxb-test")
	c, err := slack.New(slack.Config{
		Webhooks: map[string]string{"#support-urgent": srv.WebhookURL("#support-urgent")},
		BotToken: "xoxb-test",
		APIURL:   srv.APIURL,
		Clock:    clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestWebhookRequestShape(t *testing.T) {
	srv, c := setup(t, newClock())
	if err := c.Post(context.Background(), "#support-urgent", `Refund > $500 & "angry"`, "k1"); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Transport != slacktest.Webhook || r.Channel != "#support-urgent" {
		t.Errorf("went to %s %q, want the webhook of #support-urgent", r.Transport, r.Channel)
	}
	if got, want := string(r.Body), `{"text":"Refund > $500 & \"angry\""}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("webhook got Authorization %q: the bot token must not leave for a webhook", got)
	}
}

func TestPostMessageRequestShape(t *testing.T) {
	srv, c := setup(t, newClock())
	if err := c.Post(context.Background(), "#leads", "anita is away", ""); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Transport != slacktest.PostMessage || r.Channel != "#leads" || r.Text != "anita is away" {
		t.Errorf("got %s %q %q, want chat.postMessage to #leads", r.Transport, r.Channel, r.Text)
	}
	if got, want := string(r.Body), `{"channel":"#leads","text":"anita is away"}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer xoxb-test" {
		t.Errorf("Authorization %q, want Bearer xoxb-test", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want application/json; charset=utf-8", got)
	}
	if !r.Delivered {
		t.Error("fake did not count the post as delivered")
	}
}

func TestPostMessageAPIURLTrailingSlash(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	c, err := slack.New(slack.Config{BotToken: "xoxb-test", APIURL: srv.APIURL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), "C0123", "hi", ""); err != nil {
		t.Fatal(err)
	}
}

func TestWrongTokenIsPermanent(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	srv.SetToken("xoxb-right")
	c, err := slack.New(slack.Config{BotToken: "xoxb-wrong", APIURL: srv.APIURL})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Post(context.Background(), "#leads", "hi", "")
	var se *slack.Error
	if !errors.As(err, &se) || se.Code != "invalid_auth" || se.Retryable() {
		t.Fatalf("got %v, want a permanent invalid_auth", err)
	}
	if strings.Contains(err.Error(), "xoxb-") {
		t.Errorf("error %q shows the token", err)
	}
}

func TestRouting(t *testing.T) {
	srv, c := setup(t, newClock())
	ctx := context.Background()
	// "support-urgent" and "#support-urgent" are one channel.
	for _, ch := range []string{"support-urgent", "#leads"} {
		if err := c.Post(ctx, ch, "x", ""); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Transport != slacktest.Webhook || reqs[1].Transport != slacktest.PostMessage {
		t.Fatalf("got %+v, want the webhook then chat.postMessage", reqs)
	}
}

func TestNoRouteIsPermanent(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	c, err := slack.New(slack.Config{Webhooks: map[string]string{"#a": srv.WebhookURL("#a")}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Post(context.Background(), "#support-urgent", "x", "")
	var se *slack.Error
	if !errors.As(err, &se) || se.Retryable() || se.Channel != "#support-urgent" {
		t.Fatalf("got %v, want a permanent *Error for #support-urgent", err)
	}
	if want := `slack: channel "#support-urgent": no webhook for this channel and no bot token`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("sent %d requests, want none", n)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	srv, c := setup(t, newClock())
	for _, tt := range []struct{ channel, text, want string }{
		{"", "x", `slack: channel "": empty channel name`},
		{"#", "x", `slack: channel "#": empty channel name`},
		{"#leads", "", `slack: channel "#leads": no_text`},
	} {
		err := c.Post(context.Background(), tt.channel, tt.text, "")
		var se *slack.Error
		if !errors.As(err, &se) || se.Retryable() || err.Error() != tt.want {
			t.Errorf("Post(%q, %q) = %v, want permanent %q", tt.channel, tt.text, err, tt.want)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("sent %d requests, want none", n)
	}
}

func TestClassification(t *testing.T) {
	httpDate := t0.Add(2 * time.Minute).Format(http.TimeFormat)
	hdr := func(k, v string) http.Header { return http.Header{k: {v}} }
	tests := []struct {
		name       string
		channel    string // "#support-urgent" goes by webhook, others by chat.postMessage
		answer     slacktest.Answer
		ok         bool
		status     int
		code       string
		retryable  bool
		retryAfter time.Duration
		msg        string // the whole Error() text, when set
	}{
		// Incoming webhooks: plain-text codes.
		{name: "webhook ok", channel: "#support-urgent", answer: slacktest.Answer{Body: "ok"}, ok: true},
		{name: "webhook invalid_payload", channel: "#support-urgent", answer: slacktest.WebhookError(400, "invalid_payload"),
			status: 400, code: "invalid_payload", msg: `slack: channel "#support-urgent": webhook: 400 invalid_payload`},
		{name: "webhook action_prohibited", channel: "#support-urgent", answer: slacktest.WebhookError(403, "action_prohibited"), status: 403, code: "action_prohibited"},
		{name: "webhook channel_not_found", channel: "#support-urgent", answer: slacktest.WebhookError(404, "channel_not_found"), status: 404, code: "channel_not_found"},
		{name: "webhook channel_is_archived", channel: "#support-urgent", answer: slacktest.WebhookError(410, "channel_is_archived"), status: 410, code: "channel_is_archived"},
		{name: "webhook invalid_token", channel: "#support-urgent", answer: slacktest.WebhookError(403, "invalid_token"), status: 403, code: "invalid_token"},
		{name: "webhook 401 empty", channel: "#support-urgent", answer: slacktest.Answer{Status: 401}, status: 401,
			msg: `slack: channel "#support-urgent": webhook: 401 unauthorized`},
		{name: "webhook rollup_error", channel: "#support-urgent", answer: slacktest.WebhookError(500, "rollup_error"), status: 500, code: "rollup_error", retryable: true},
		{name: "webhook 503 html", channel: "#support-urgent", answer: slacktest.Answer{Status: 503, Body: "<html>down</html>"}, status: 503, retryable: true,
			msg: `slack: channel "#support-urgent": webhook: 503 service unavailable`},
		{name: "webhook 408", channel: "#support-urgent", answer: slacktest.Answer{Status: 408}, status: 408, retryable: true},
		{name: "webhook 429 retry-after", channel: "#support-urgent", answer: slacktest.Answer{Status: 429, Body: "rate_limited", RetryAfter: 7 * time.Second},
			status: 429, code: "rate_limited", retryable: true, retryAfter: 7 * time.Second,
			msg: `slack: channel "#support-urgent": webhook: 429 rate_limited (retry after 7s)`},
		{name: "webhook 429 no retry-after", channel: "#support-urgent", answer: slacktest.Answer{Status: 429}, status: 429, retryable: true},
		{name: "webhook 429 http-date", channel: "#support-urgent", answer: slacktest.Answer{Status: 429, Header: hdr("Retry-After", httpDate)},
			status: 429, retryable: true, retryAfter: 2 * time.Minute},
		{name: "webhook 429 garbage retry-after", channel: "#support-urgent", answer: slacktest.Answer{Status: 429, Header: hdr("Retry-After", "soon")},
			status: 429, retryable: true},
		{name: "webhook 429 huge retry-after is capped", channel: "#support-urgent", answer: slacktest.Answer{Status: 429, Header: hdr("Retry-After", "99999999999999999")},
			status: 429, retryable: true, retryAfter: time.Hour},
		{name: "webhook 200 not ok", channel: "#support-urgent", answer: slacktest.Answer{Body: "no_text"}, status: 200, code: "no_text"},
		{name: "webhook 200 html", channel: "#support-urgent", answer: slacktest.Answer{Body: "<html>portal</html>"}, status: 200,
			msg: `slack: channel "#support-urgent": webhook: unexpected answer`},
		{name: "webhook 307", channel: "#support-urgent", answer: slacktest.Answer{Status: 307}, status: 307},

		// chat.postMessage: JSON, errors mostly with 200.
		{name: "api ok", channel: "#leads", answer: slacktest.Answer{Body: `{"ok":true,"channel":"C1","ts":"1.2"}`}, ok: true},
		{name: "api ok with warning", channel: "#leads", answer: slacktest.Answer{Body: `{"ok":true,"warning":"missing_charset"}`}, ok: true},
		{name: "api channel_not_found", channel: "#leads", answer: slacktest.APIError("channel_not_found"), status: 200, code: "channel_not_found",
			msg: `slack: channel "#leads": chat.postMessage: channel_not_found`},
		{name: "api not_in_channel", channel: "#leads", answer: slacktest.APIError("not_in_channel"), status: 200, code: "not_in_channel"},
		{name: "api invalid_auth", channel: "#leads", answer: slacktest.APIError("invalid_auth"), status: 200, code: "invalid_auth"},
		{name: "api is_archived", channel: "#leads", answer: slacktest.APIError("is_archived"), status: 200, code: "is_archived"},
		{name: "api msg_too_long", channel: "#leads", answer: slacktest.APIError("msg_too_long"), status: 200, code: "msg_too_long"},
		{name: "api ratelimited in body", channel: "#leads", answer: slacktest.APIError("ratelimited"), status: 200, code: "ratelimited", retryable: true},
		{name: "api internal_error", channel: "#leads", answer: slacktest.APIError("internal_error"), status: 200, code: "internal_error", retryable: true},
		{name: "api service_unavailable", channel: "#leads", answer: slacktest.APIError("service_unavailable"), status: 200, code: "service_unavailable", retryable: true},
		{name: "api ok false without code", channel: "#leads", answer: slacktest.Answer{Body: `{"ok":false}`}, status: 200},
		{name: "api 429", channel: "#leads", answer: slacktest.RateLimited(3 * time.Second), status: 429, code: "ratelimited", retryable: true, retryAfter: 3 * time.Second,
			msg: `slack: channel "#leads": chat.postMessage: 429 ratelimited (retry after 3s)`},
		{name: "api 500", channel: "#leads", answer: slacktest.Answer{Status: 500}, status: 500, retryable: true},
		{name: "api 502 html", channel: "#leads", answer: slacktest.Answer{Status: 502, Body: "<html>bad gateway</html>"}, status: 502, retryable: true},
		{name: "api 503 retry-after", channel: "#leads", answer: slacktest.Answer{Status: 503, RetryAfter: 10 * time.Second}, status: 503, retryable: true, retryAfter: 10 * time.Second},
		{name: "api 404 wrong api_url", channel: "#leads", answer: slacktest.Answer{Status: 404, Body: "Not Found"}, status: 404},
		{name: "api 200 not json", channel: "#leads", answer: slacktest.Answer{Body: "<html>login</html>"}, status: 200,
			msg: `slack: channel "#leads": chat.postMessage: answer is not a Slack API response`},
		{name: "api 200 json without ok", channel: "#leads", answer: slacktest.Answer{Body: `{}`}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := setup(t, newClock())
			srv.Script(tt.answer)
			err := c.Post(context.Background(), tt.channel, "hello", "")
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var se *slack.Error
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want *slack.Error", err, err)
			}
			if slack.IsRetryable(err) != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", slack.IsRetryable(err), tt.retryable)
			}
			if se.Status != tt.status || se.Code != tt.code || se.Retryable() != tt.retryable || se.RetryAfter() != tt.retryAfter {
				t.Errorf("got status %d code %q retryable %v after %v; want %d %q %v %v (%v)",
					se.Status, se.Code, se.Retryable(), se.RetryAfter(), tt.status, tt.code, tt.retryable, tt.retryAfter, err)
			}
			if se.Channel != tt.channel || !strings.Contains(err.Error(), tt.channel) {
				t.Errorf("error %q does not name channel %q", err, tt.channel)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("Error() = %q, want %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "/services/") || strings.Contains(err.Error(), "<html") {
				t.Errorf("error %q shows a webhook URL or a body", err)
			}
		})
	}
}

func TestNetworkErrorIsRetryableAndHidesWebhookURL(t *testing.T) {
	srv := slacktest.NewServer()
	hook := srv.WebhookURL("#ops")
	srv.Close() // nothing listens any more: connection refused
	c, err := slack.New(slack.Config{Webhooks: map[string]string{"#ops": hook}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Post(context.Background(), "#ops", "x", "")
	var se *slack.Error
	if !errors.As(err, &se) || !se.Retryable() || se.Status != 0 {
		t.Fatalf("got %v, want a retryable *Error without status", err)
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "/services/") {
		t.Errorf("error %q shows the webhook URL", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	c, err := slack.New(slack.Config{BotToken: "xoxb-test", APIURL: hang.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	err = c.Post(ctx, "#ops", "x", "")
	var se *slack.Error
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if errors.As(err, &se) && !se.Retryable() {
		t.Errorf("got %v, want retryable", err)
	}
}

func TestPacingOneChannel(t *testing.T) {
	clk := newClock()
	srv, c := setup(t, clk)
	ctx := context.Background()
	for _, text := range []string{"a", "b", "c"} {
		if err := c.Post(ctx, "#leads", text, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := clk.Waits(); len(got) != 2 || got[0] != time.Second || got[1] != time.Second {
		t.Errorf("waits %v, want [1s 1s]", got)
	}
	reqs := srv.Requests()
	want := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}
	for i, r := range reqs {
		if !r.At.Equal(want[i]) {
			t.Errorf("request %d at %v, want %v", i, r.At.Sub(t0), want[i].Sub(t0))
		}
	}
}

func TestPacingCustomIntervalAndTimePassed(t *testing.T) {
	clk := newClock()
	srv := slacktest.NewServer()
	defer srv.Close()
	c, err := slack.New(slack.Config{BotToken: "xoxb-test", APIURL: srv.APIURL, MinInterval: 5 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Post(ctx, "#a", "1", ""); err != nil {
		t.Fatal(err)
	}
	clk.mu.Lock()
	clk.now = clk.now.Add(3 * time.Second) // time passes on its own
	clk.mu.Unlock()
	if err := c.Post(ctx, "#a", "2", ""); err != nil {
		t.Fatal(err)
	}
	if got := clk.Waits(); len(got) != 1 || got[0] != 2*time.Second {
		t.Errorf("waits %v, want [2s]: only what is left of the 5s", got)
	}
}

func TestChannelsDoNotWaitForEachOther(t *testing.T) {
	clk := newClock()
	_, c := setup(t, clk)
	ctx := context.Background()
	for _, ch := range []string{"#a", "#b", "#support-urgent", "C0123"} {
		if err := c.Post(ctx, ch, "x", ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := clk.Waits(); len(got) != 0 {
		t.Errorf("waits %v, want none: each channel posted once", got)
	}

	// While a post to #a waits for its turn, #b goes through.
	clk.mu.Lock()
	clk.block = true
	clk.mu.Unlock()
	waitCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Post(waitCtx, "#a", "second", "") }()
	select {
	case <-clk.waiting:
	case err := <-done:
		cancel()
		t.Fatalf("second post to #a did not wait: %v", err)
	}
	if err := c.Post(ctx, "#c", "first", ""); err != nil {
		t.Fatalf("#c waited for #a: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestRetryAfterDelaysTheChannel(t *testing.T) {
	clk := newClock()
	srv, c := setup(t, clk)
	srv.Script(slacktest.RateLimited(30 * time.Second))
	ctx := context.Background()
	err := c.Post(ctx, "#leads", "x", "")
	var se *slack.Error
	if !errors.As(err, &se) || se.RetryAfter() != 30*time.Second {
		t.Fatalf("got %v, want a 429 asking for 30s", err)
	}
	if err := c.Post(ctx, "#leads", "x", ""); err != nil {
		t.Fatal(err)
	}
	if got := clk.Waits(); len(got) != 1 || got[0] != 30*time.Second {
		t.Errorf("waits %v, want [30s]", got)
	}
	if reqs := srv.Requests(); len(reqs) != 2 || reqs[1].At.Sub(reqs[0].At) != 30*time.Second {
		t.Errorf("requests %v apart, want 30s", reqs[1].At.Sub(reqs[0].At))
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	clk := newClock()
	srv, c := setup(t, clk)
	ctx := context.Background()
	if err := c.Post(ctx, "#leads", "first", ""); err != nil {
		t.Fatal(err)
	}
	clk.mu.Lock()
	clk.block = true
	clk.mu.Unlock()

	waitCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Post(waitCtx, "#leads", "second", "") }()
	select {
	case d := <-clk.waiting:
		if d != time.Second {
			t.Errorf("waiting %v, want 1s", d)
		}
	case err := <-done:
		cancel()
		t.Fatalf("second post did not wait: %v", err)
	}

	// A third post queues behind the waiting one and gives up with its
	// own context.
	queued, cancelQueued := context.WithCancel(ctx)
	cancelQueued()
	if err := c.Post(queued, "#leads", "third", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("queued post: got %v, want context.Canceled", err)
	}

	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"#leads"`) || slack.IsRetryable(err) {
		t.Fatalf("got %v, want a context.Canceled naming #leads", err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("sent %d requests, want 1", n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	srv, c := setup(t, newClock())
	ctx := context.Background()
	srv.ScriptChannel("#leads", slacktest.Answer{Status: 500})
	if err := c.Post(ctx, "#leads", "x", "k1"); err == nil {
		t.Fatal("want the scripted 500")
	}
	for range 3 { // the first delivers; the others are skipped
		if err := c.Post(ctx, "#leads", "x", "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Post(ctx, "#leads", "y", "k2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Post(ctx, "#leads", "z", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Post(ctx, "#leads", "z", ""); err != nil {
		t.Fatal(err)
	}
	if got := srv.Delivered()["#leads"]; strings.Join(got, ",") != "x,y,z,z" {
		t.Errorf("delivered %v, want [x y z z]", got)
	}
	if n := len(srv.Requests()); n != 5 {
		t.Errorf("sent %d requests, want 5 (one failed, four delivered)", n)
	}
}

func TestConcurrentPosts(t *testing.T) {
	clk := newClock()
	srv, c := setup(t, clk)
	channels := []string{"#a", "#b", "#support-urgent"}
	const workers, perWorker = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				ch := channels[(w+i)%len(channels)]
				if err := c.Post(context.Background(), ch, "x", ""); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reqs := srv.Requests()
	if len(reqs) != workers*perWorker {
		t.Fatalf("got %d requests, want %d", len(reqs), workers*perWorker)
	}
	last := map[string]time.Time{}
	for _, r := range reqs {
		if prev, ok := last[r.Channel]; ok && r.At.Sub(prev) < time.Second {
			t.Errorf("two posts to %s only %v apart", r.Channel, r.At.Sub(prev))
		}
		last[r.Channel] = r.At
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  slack.Config
		want string // substring of the error; "" means valid
	}{
		{name: "nothing", cfg: slack.Config{}, want: "neither webhooks nor bot_token is set"},
		{name: "webhooks only", cfg: slack.Config{Webhooks: map[string]string{"#a": "https://hooks.slack.com/services/T/B/x"}}},
		{name: "token only", cfg: slack.Config{BotToken: "xoxb-1"}},
		{name: "both", cfg: slack.Config{BotToken: "xoxb-1", APIURL: "http://127.0.0.1:9/api",
			Webhooks: map[string]string{"#a": "http://127.0.0.1:9/services/T/B/x"}}},
		{name: "webhook not http", cfg: slack.Config{Webhooks: map[string]string{"#a": "ftp://hooks.slack.com/services/T/B/sekrit"}},
			want: `slack: webhook for channel "#a": not an http or https URL`},
		{name: "webhook empty (unset variable)", cfg: slack.Config{Webhooks: map[string]string{"#a": ""}},
			want: `slack: webhook for channel "#a": empty URL`},
		{name: "webhook unparsable", cfg: slack.Config{Webhooks: map[string]string{"#a": "http://[::1/sekrit"}},
			want: `slack: webhook for channel "#a": not a valid URL`},
		{name: "webhook no host", cfg: slack.Config{Webhooks: map[string]string{"#a": "https:///sekrit"}},
			want: `slack: webhook for channel "#a": URL has no host`},
		{name: "webhook relative", cfg: slack.Config{Webhooks: map[string]string{"#a": "/services/sekrit"}},
			want: `not an http or https URL`},
		{name: "empty channel", cfg: slack.Config{Webhooks: map[string]string{"#": "https://h/x"}},
			want: "webhook with an empty channel name"},
		{name: "same channel twice", cfg: slack.Config{Webhooks: map[string]string{"#a": "https://h/x", "a": "https://h/y"}},
			want: `channels "#a" and "a" name the same channel`},
		{name: "bad api_url", cfg: slack.Config{BotToken: "xoxb-1", APIURL: "slack.com/api"}, want: "api_url"},
		{name: "api_url without token", cfg: slack.Config{APIURL: "https://slack.com/api", Webhooks: map[string]string{"#a": "https://h/x"}},
			want: "api_url is set but bot_token is not"},
		{name: "token with space", cfg: slack.Config{BotToken: "xoxb-1\n"}, want: "bot_token contains white space"},
		{name: "negative interval", cfg: slack.Config{BotToken: "xoxb-1", MinInterval: -time.Second}, want: "negative min interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := slack.New(tt.cfg)
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("got %v, want a client", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a client, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error %q shows the webhook URL", err)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := slack.New(slack.Config{
		Webhooks:    map[string]string{"#a": "", "#b": "ftp://x"},
		MinInterval: -1,
	})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`"#a"`, `"#b"`, "negative min interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
