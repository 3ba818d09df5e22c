package whatsapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

const (
	phoneID  = "106540352242922"
	token    = "EAAG-test-token"
	customer = "16505551234"
)

func newClient(t *testing.T) (*whatsapp.Client, *whatsapptest.Server) {
	t.Helper()
	srv := whatsapptest.NewServer()
	t.Cleanup(srv.Close)
	srv.RequireToken(token)
	return &whatsapp.Client{BaseURL: srv.BaseURL(), PhoneNumberID: phoneID, Token: token, HTTP: srv.Client()}, srv
}

// checkGoldenRequest compares a request body, indented, with
// testdata/requests/name.
func checkGoldenRequest(t *testing.T, name string, raw []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatalf("request body is not JSON: %v\n%s", err, raw)
	}
	buf.WriteByte('\n')
	golden := filepath.Join("testdata", "requests", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("request body differs from %s:\ngot:\n%s\nwant:\n%s", golden, buf.Bytes(), want)
	}
}

func onlyRequest(t *testing.T, srv *whatsapptest.Server) whatsapptest.Request {
	t.Helper()
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

func TestSendText(t *testing.T) {
	c, srv := newClient(t)
	id, err := c.SendText(context.Background(), customer, "Hi Sheena, Anita from our team will reply within 5 minutes.", "m3/human-keyword/reply#2")
	if err != nil {
		t.Fatalf("SendText: %v", err)
	}
	r := onlyRequest(t, srv)
	if id == "" || id != r.MessageID || !strings.HasPrefix(id, "wamid.") {
		t.Errorf("message id %q, the fake answered %q", id, r.MessageID)
	}
	if r.Method != http.MethodPost || r.Path != "/v21.0/"+phoneID+"/messages" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if r.Message.Text == nil || r.Message.Text.PreviewURL {
		t.Errorf("text object %+v: want preview_url false without a link", r.Message.Text)
	}
	checkGoldenRequest(t, "text.json", r.Raw)
}

func TestSendTextWithLink(t *testing.T) {
	c, srv := newClient(t)
	if _, err := c.SendText(context.Background(), "+"+customer, "Track it at https://example.com/t/42", ""); err != nil {
		t.Fatal(err)
	}
	r := onlyRequest(t, srv)
	if !r.Message.Text.PreviewURL {
		t.Error("preview_url is false for a text with a link")
	}
	if _, ok := r.Body["biz_opaque_callback_data"]; ok {
		t.Error("biz_opaque_callback_data sent without a key")
	}
	if r.Message.To != "+"+customer {
		t.Errorf("to %q", r.Message.To)
	}
}

func TestSendTemplate(t *testing.T) {
	c, srv := newClient(t)
	id, err := c.SendTemplate(context.Background(), customer, "order_update", "en_US", []string{"Sheena", "#4512"}, "m9/window/send_template#0")
	if err != nil {
		t.Fatalf("SendTemplate: %v", err)
	}
	r := onlyRequest(t, srv)
	if id != r.MessageID {
		t.Errorf("message id %q, the fake answered %q", id, r.MessageID)
	}
	checkGoldenRequest(t, "template.json", r.Raw)

	srv.Reset()
	if _, err := c.SendTemplate(context.Background(), customer, "hello_world", "en_US", nil, "k"); err != nil {
		t.Fatal(err)
	}
	checkGoldenRequest(t, "template_no_params.json", onlyRequest(t, srv).Raw)
}

func TestSendLongKeyIsHashed(t *testing.T) {
	c, srv := newClient(t)
	key := strings.Repeat("k", 600)
	if _, err := c.SendText(context.Background(), customer, "hi", key); err != nil {
		t.Fatal(err)
	}
	got := onlyRequest(t, srv).Message.BizOpaqueCallbackData
	if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
		t.Errorf("callback data %q for a 600-byte key", got)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name         string
		reply        whatsapptest.Reply
		status, code int
		retryable    bool
		windowClosed bool
		optedOut     bool
		retryAfter   time.Duration
	}{
		{"131047 re-engagement", whatsapptest.MetaError(131047), 400, 131047, false, true, false, 0},
		{"130429 rate limit", whatsapptest.MetaError(130429), 400, 130429, true, false, false, 5 * time.Second},
		{"131056 pair rate limit", whatsapptest.MetaError(131056), 400, 131056, true, false, false, 6 * time.Second},
		{"131026 undeliverable", whatsapptest.MetaError(131026), 400, 131026, false, false, false, 0},
		{"131050 stopped marketing", whatsapptest.MetaError(131050), 400, 131050, false, false, true, 0},
		{"190 auth", whatsapptest.MetaError(190), 401, 190, false, false, false, 0},
		{"190 under 400", whatsapptest.Reply{Status: 400, Code: 190, Message: "Error validating access token"}, 400, 190, false, false, false, 0},
		{"131000 server error", whatsapptest.MetaError(131000), 500, 131000, true, false, false, 0},
		{"100 invalid parameter", whatsapptest.MetaError(100), 400, 100, false, false, false, 0},
		{"4 app rate limit", whatsapptest.Reply{Status: 400, Code: 4, Message: "(#4) Application request limit reached"}, 400, 4, true, false, false, time.Minute},
		{"unknown code 4xx", whatsapptest.MetaError(135000), 400, 135000, false, false, false, 0},
		{"unknown code 503", whatsapptest.Reply{Status: 503, Code: 135001, Message: "(#135001) Whatever"}, 503, 135001, true, false, false, 0},
		{"131047 under 500", whatsapptest.Reply{Status: 500, Code: 131047, Message: "(#131047) Re-engagement message"}, 500, 131047, false, true, false, 0},
		{"garbled 500", whatsapptest.Reply{Status: 500, Body: []byte(`{"error":`)}, 500, 0, true, false, false, 0},
		{"html 502", whatsapptest.Reply{Status: 502, Body: []byte("<html>Bad Gateway</html>")}, 502, 0, true, false, false, 0},
		{"empty 503", whatsapptest.Reply{Status: 503, Body: []byte{}}, 503, 0, true, false, false, 0},
		{"empty 429", whatsapptest.Reply{Status: 429, Body: []byte{}}, 429, 0, true, false, false, 0},
		{"empty 408", whatsapptest.Reply{Status: 408, Body: []byte("timeout")}, 408, 0, true, false, false, 0},
		{"garbled 401", whatsapptest.Reply{Status: 401, Body: []byte("nope")}, 401, 0, false, false, false, 0},
		{"garbled 403", whatsapptest.Reply{Status: 403, Body: []byte("[]")}, 403, 0, false, false, false, 0},
		{"garbled 404", whatsapptest.Reply{Status: 404, Body: []byte("not found")}, 404, 0, false, false, false, 0},
		{"error null 400", whatsapptest.Reply{Status: 400, Body: []byte(`{"error":null}`)}, 400, 0, false, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := newClient(t)
			srv.FailNext(1, tt.reply)
			id, err := c.SendText(context.Background(), customer, "hello", "k1")
			if err == nil {
				t.Fatalf("SendText succeeded with id %q", id)
			}
			if id != "" {
				t.Errorf("id %q with an error", id)
			}
			var e *whatsapp.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not *whatsapp.Error", err, err)
			}
			if e.Status != tt.status || e.Code != tt.code {
				t.Errorf("status %d code %d, want %d %d", e.Status, e.Code, tt.status, tt.code)
			}
			if e.Retryable() != tt.retryable || e.WindowClosed != tt.windowClosed || e.OptedOut != tt.optedOut {
				t.Errorf("retryable %v window closed %v opted out %v, want %v %v %v",
					e.Retryable(), e.WindowClosed, e.OptedOut, tt.retryable, tt.windowClosed, tt.optedOut)
			}
			if whatsapp.IsRetryable(err) != tt.retryable {
				t.Errorf("IsRetryable = %v", whatsapp.IsRetryable(err))
			}
			if e.RetryAfter() != tt.retryAfter {
				t.Errorf("RetryAfter %v, want %v", e.RetryAfter(), tt.retryAfter)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "whatsapp: send") || strings.Contains(msg, token) || strings.Contains(msg, "\n") {
				t.Errorf("error message %q", msg)
			}
			if tt.reply.Body == nil && (!strings.Contains(msg, tt.reply.Message) || e.Title != tt.reply.Message) {
				t.Errorf("error %q (title %q) does not carry Meta's message %q", msg, e.Title, tt.reply.Message)
			}
			if tt.reply.Body == nil && e.Message != tt.reply.Details {
				t.Errorf("Message %q, want the details %q", e.Message, tt.reply.Details)
			}
			// The script is spent: the next send succeeds.
			if _, err := c.SendText(context.Background(), customer, "hello", "k1"); err != nil {
				t.Errorf("second send: %v", err)
			}
		})
	}
}

func TestSendTemplateErrors(t *testing.T) {
	c, srv := newClient(t)
	srv.FailRecipient(customer, whatsapptest.MetaError(131050))
	_, err := c.SendTemplate(context.Background(), customer, "promo", "en", nil, "k")
	var e *whatsapp.Error
	if !errors.As(err, &e) || !e.OptedOut || e.Retryable() {
		t.Fatalf("template to an opted-out customer: %v", err)
	}
	if _, err := c.SendTemplate(context.Background(), "447700900123", "promo", "en", nil, "k"); err != nil {
		t.Errorf("another recipient: %v", err)
	}
	if _, err := c.SendTemplate(context.Background(), customer, "promo", "en", nil, "k"); err == nil {
		t.Error("the recipient script ran out")
	}
	srv.ClearRecipient(customer)
	if _, err := c.SendTemplate(context.Background(), customer, "promo", "en", nil, "k"); err != nil {
		t.Errorf("after ClearRecipient: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name  string
		reply whatsapptest.Reply
		min   time.Duration
		max   time.Duration
	}{
		{"seconds on 130429", whatsapptest.MetaError(130429).WithRetryAfter("17"), 17 * time.Second, 17 * time.Second},
		{"seconds on 429", whatsapptest.Reply{Status: 429, Body: []byte{}}.WithRetryAfter("3"), 3 * time.Second, 3 * time.Second},
		{"zero on 503", whatsapptest.Reply{Status: 503, Body: []byte{}}.WithRetryAfter("0"), 0, 0},
		{"http date", whatsapptest.Reply{Status: 503, Body: []byte{}}.WithRetryAfter(date), 85 * time.Second, 90 * time.Second},
		{"date in the past", whatsapptest.Reply{Status: 503, Body: []byte{}}.WithRetryAfter("Mon, 02 Jan 2006 15:04:05 GMT"), 0, 0},
		{"garbled keeps the default", whatsapptest.MetaError(131056).WithRetryAfter("soon"), 6 * time.Second, 6 * time.Second},
		{"negative keeps the default", whatsapptest.MetaError(130429).WithRetryAfter("-4"), 5 * time.Second, 5 * time.Second},
		{"huge is capped", whatsapptest.MetaError(130429).WithRetryAfter("99999999999"), 24 * time.Hour, 24 * time.Hour},
		{"ignored on permanent", whatsapptest.MetaError(131047).WithRetryAfter("30"), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := newClient(t)
			srv.FailNext(1, tt.reply)
			_, err := c.SendText(context.Background(), customer, "hello", "k")
			var e *whatsapp.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v", err)
			}
			if got := e.RetryAfter(); got < tt.min || got > tt.max {
				t.Errorf("RetryAfter %v, want between %v and %v", got, tt.min, tt.max)
			}
		})
	}
}

func TestSendContextCancel(t *testing.T) {
	c, srv := newClient(t)
	srv.FailNext(1, whatsapptest.Reply{Status: 500, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.SendText(ctx, customer, "hello", "k")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SendText took %v after its context ended", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not context.DeadlineExceeded", err)
	}
	var e *whatsapp.Error
	if !errors.As(err, &e) || !e.Retryable() || e.Status != 0 {
		t.Errorf("a timed-out send must be a retryable *Error without status: %#v", err)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, err = c.SendTemplate(cancelled, customer, "hello_world", "en_US", nil, "k")
	if !errors.Is(err, context.Canceled) || !whatsapp.IsRetryable(err) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestSendNetworkError(t *testing.T) {
	c, srv := newClient(t)
	srv.Close()
	_, err := c.SendText(context.Background(), customer, "hello", "k")
	var e *whatsapp.Error
	if !errors.As(err, &e) || !e.Retryable() || e.Status != 0 || errors.Unwrap(err) == nil {
		t.Errorf("network failure: %#v", err)
	}
}

func TestSendRefusedLocally(t *testing.T) {
	c, srv := newClient(t)
	ctx := context.Background()
	tests := map[string]func() error{
		"empty recipient": func() error { _, err := c.SendText(ctx, " ", "hi", "k"); return err },
		"empty text":      func() error { _, err := c.SendText(ctx, customer, " \n", "k"); return err },
		"text too long": func() error {
			_, err := c.SendText(ctx, customer, strings.Repeat("é", whatsapp.MaxTextLength+1), "k")
			return err
		},
		"no template name": func() error { _, err := c.SendTemplate(ctx, customer, "", "en", nil, "k"); return err },
		"no language":      func() error { _, err := c.SendTemplate(ctx, customer, "t", "", nil, "k"); return err },
		"no phone id": func() error {
			c2 := *c
			c2.PhoneNumberID = ""
			_, err := c2.SendText(ctx, customer, "hi", "k")
			return err
		},
		"no token": func() error {
			c2 := *c
			c2.Token = ""
			_, err := c2.SendText(ctx, customer, "hi", "k")
			return err
		},
	}
	for name, send := range tests {
		err := send()
		var e *whatsapp.Error
		if !errors.As(err, &e) || e.Retryable() || e.Status != 0 {
			t.Errorf("%s: %#v, want a permanent *Error", name, err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests reached the fake", n)
	}
	// Exactly the limit is fine.
	if _, err := c.SendText(ctx, customer, strings.Repeat("é", whatsapp.MaxTextLength), "k"); err != nil {
		t.Errorf("text of %d characters: %v", whatsapp.MaxTextLength, err)
	}
}

func TestFakeChecksToken(t *testing.T) {
	c, srv := newClient(t)
	c.Token = "wrong"
	_, err := c.SendText(context.Background(), customer, "hi", "k")
	var e *whatsapp.Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != 190 || e.Retryable() {
		t.Errorf("wrong token: %v", err)
	}
	if got := onlyRequest(t, srv).Status; got != 401 {
		t.Errorf("fake recorded status %d", got)
	}
}

func TestFakeSuccessBody(t *testing.T) {
	srv := whatsapptest.NewServer()
	defer srv.Close()
	body := `{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}`
	req, _ := http.NewRequest(http.MethodPost, srv.BaseURL()+"/"+phoneID+"/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer x")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		MessagingProduct string `json:"messaging_product"`
		Contacts         []struct {
			Input string `json:"input"`
			WaID  string `json:"wa_id"`
		} `json:"contacts"`
		Messages []struct {
			ID            string `json:"id"`
			MessageStatus string `json:"message_status"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got.MessagingProduct != "whatsapp" || len(got.Contacts) != 1 ||
		got.Contacts[0].Input != "+16505551234" || got.Contacts[0].WaID != "16505551234" ||
		len(got.Messages) != 1 || !strings.HasPrefix(got.Messages[0].ID, "wamid.") || got.Messages[0].MessageStatus != "accepted" {
		t.Errorf("success body: %d %+v", resp.StatusCode, got)
	}
	for path, want := range map[string]int{"/" + phoneID + "/messages": 400, srv.BaseURL()[len(srv.URL):] + "/" + phoneID: 400} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer x")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
