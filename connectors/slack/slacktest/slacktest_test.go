package slacktest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/slack/slacktest"
)

func post(t *testing.T, url, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDefaultAnswers(t *testing.T) {
	s := slacktest.NewServer()
	defer s.Close()
	s.SetToken("xoxb-right")
	hook := s.WebhookURL("#ops")
	if again := s.WebhookURL("#ops"); again != hook {
		t.Errorf("second WebhookURL %q, want %q", again, hook)
	}
	api := s.APIURL + "/chat.postMessage"

	tests := []struct {
		name, url, auth, body string
		status                int
		want                  string
	}{
		{"webhook ok", hook, "", `{"text":"hi"}`, 200, "ok"},
		{"webhook bad json", hook, "", `{`, 400, "invalid_payload"},
		{"webhook no text", hook, "", `{}`, 400, "no_text"},
		{"unknown webhook", s.URL + "/services/T/B/nope", "", `{"text":"hi"}`, 404, "no_service"},
		{"api ok", api, "Bearer xoxb-right", `{"channel":"#ops","text":"hi"}`, 200, `"ok":true`},
		{"api no auth", api, "", `{"channel":"#ops","text":"hi"}`, 200, `"error":"not_authed"`},
		{"api wrong token", api, "Bearer xoxb-wrong", `{"channel":"#ops","text":"hi"}`, 200, `"error":"invalid_auth"`},
		{"api no channel", api, "Bearer xoxb-right", `{"text":"hi"}`, 200, `"error":"channel_not_found"`},
		{"api no text", api, "Bearer xoxb-right", `{"channel":"#ops"}`, 200, `"error":"no_text"`},
	}
	for _, tt := range tests {
		status, _, body := post(t, tt.url, tt.auth, tt.body)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, status, body, tt.status, tt.want)
		}
	}
	reqs := s.Requests()
	if len(reqs) != len(tests)-1 { // the unknown webhook is not recorded
		t.Fatalf("recorded %d requests, want %d", len(reqs), len(tests)-1)
	}
	if got := s.Delivered(); len(got["#ops"]) != 2 {
		t.Errorf("delivered %v, want two messages to #ops", got)
	}
}

func TestScript(t *testing.T) {
	s := slacktest.NewServer()
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return at })
	hook := s.WebhookURL("#ops")
	s.Script(slacktest.RateLimited(1500*time.Millisecond), slacktest.WebhookError(410, "channel_is_archived"))
	s.ScriptChannel("#ops", slacktest.WebhookError(404, "channel_not_found"))

	// The channel's own script comes first, then the shared one.
	status, _, body := post(t, hook, "", `{"text":"1"}`)
	if status != 404 || body != "channel_not_found" {
		t.Errorf("first: got %d %q", status, body)
	}
	status, h, _ := post(t, hook, "", `{"text":"2"}`)
	if status != 429 || h.Get("Retry-After") != "2" {
		t.Errorf("second: got %d Retry-After %q, want 429 and 2 (rounded up)", status, h.Get("Retry-After"))
	}
	status, _, body = post(t, s.APIURL+"/chat.postMessage", "Bearer x", `{"channel":"#x","text":"3"}`)
	if status != 410 || body != "channel_is_archived" {
		t.Errorf("third: got %d %q", status, body)
	}
	status, _, body = post(t, hook, "", `{"text":"4"}`)
	if status != 200 || body != "ok" {
		t.Errorf("fourth: got %d %q, want the default 200 ok", status, body)
	}
	reqs := s.Requests()
	if len(reqs) != 4 || !reqs[0].At.Equal(at) || reqs[3].Text != "4" || reqs[0].Status != 404 || !reqs[3].Delivered {
		t.Errorf("recorded %+v", reqs)
	}
}
