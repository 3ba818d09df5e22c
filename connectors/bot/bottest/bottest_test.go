package bottest_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/bot/bottest"
)

func TestServerRefusesWhatABotWouldRefuse(t *testing.T) {
	s := bottest.New(t)
	for _, tc := range []struct {
		method, body string
		status       int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, `{"conversation": "c", "text": "hi", "extra": 1}`, http.StatusBadRequest},
		{http.MethodPost, `{"text": 5}`, http.StatusBadRequest},
		{http.MethodPost, `not json`, http.StatusBadRequest},
		{http.MethodPost, `{"conversation": "c", "contact": {}, "text": "hi", "history": []}`, http.StatusOK},
	} {
		req, err := http.NewRequest(tc.method, s.URL, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.body, resp.StatusCode, tc.status)
		}
	}
	if n := len(s.Requests()); n != 5 {
		t.Errorf("%d requests recorded, want 5", n)
	}
	if qs := s.Questions(); len(qs) != 1 || qs[0].Text != "hi" {
		t.Errorf("questions %+v, want only the valid one", qs)
	}
}

func TestServerScriptAndModes(t *testing.T) {
	s := bottest.New(t)
	b := &bot.HTTPBot{URL: s.URL}
	ctx := context.Background()
	s.Answer("hi", bot.Answer{Text: "hello", Confidence: 0.9})
	s.Default(bot.Answer{Text: "default", Confidence: 0.2})
	if a, err := b.Ask(ctx, bot.Question{Text: "hi"}); err != nil || a.Text != "hello" {
		t.Errorf("scripted: %+v, %v", a, err)
	}
	if a, err := b.Ask(ctx, bot.Question{Text: "HI"}); err != nil || a.Text != "default" {
		t.Errorf("not exactly scripted: %+v, %v", a, err)
	}
	s.Fail(http.StatusBadGateway)
	if _, err := b.Ask(ctx, bot.Question{Text: "hi"}); err == nil {
		t.Error("Fail did not fail")
	}
	s.Fail(0)
	s.Raw(http.StatusOK, []byte(`{"text": "raw", "confidence": 0.5}`))
	if a, err := b.Ask(ctx, bot.Question{Text: "hi"}); err != nil || a.Text != "raw" {
		t.Errorf("raw: %+v, %v", a, err)
	}
	s.Raw(0, nil)
	if a, err := b.Ask(ctx, bot.Question{Text: "hi"}); err != nil || a.Text != "hello" {
		t.Errorf("back to the script: %+v, %v", a, err)
	}
}

// TestServerCloseReleasesDelayed checks that Close does not wait out a
// long Delay, so tests of slow bots end quickly.
func TestServerCloseReleasesDelayed(t *testing.T) {
	s := bottest.Start()
	s.Delay(time.Hour)
	done := make(chan error, 1)
	go func() {
		_, err := (&bot.HTTPBot{URL: s.URL, Timeout: time.Hour}).Ask(context.Background(), bot.Question{Text: "hi"})
		done <- err
	}()
	// Wait until the request is in, then close.
	for len(s.Questions()) == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a released request should not get an answer")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not release the delayed request")
	}
}
