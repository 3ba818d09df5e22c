package whatsapptest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

func post(t *testing.T, srv *whatsapptest.Server, to string) (int, map[string]any, http.Header) {
	t.Helper()
	body := `{"messaging_product":"whatsapp","recipient_type":"individual","to":"` + to + `","type":"text","text":{"body":"hi"}}`
	req, err := http.NewRequest(http.MethodPost, srv.BaseURL()+"/123/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, got, resp.Header
}

func TestScriptsQueueInOrder(t *testing.T) {
	srv := whatsapptest.NewServer()
	defer srv.Close()
	srv.FailNext(1, whatsapptest.MetaError(whatsapptest.CodeRateLimit).WithRetryAfter("2"))
	srv.FailNext(2, whatsapptest.MetaError(whatsapptest.CodeServiceError))
	srv.FailRecipient("2", whatsapptest.MetaError(whatsapptest.CodeReEngagement))

	wantCodes := []float64{130429, 131000, 131000, 0, 131047}
	for i, to := range []string{"1", "1", "1", "1", "2"} {
		status, body, header := post(t, srv, to)
		var code float64
		if e, ok := body["error"].(map[string]any); ok {
			code, _ = e["code"].(float64)
		}
		if code != wantCodes[i] {
			t.Errorf("request %d: code %v (status %d), want %v", i, code, status, wantCodes[i])
		}
		if i == 0 && header.Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q", header.Get("Retry-After"))
		}
		if code == 0 && status != 200 {
			t.Errorf("request %d: status %d", i, status)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 5 || reqs[3].Status != 200 || reqs[3].MessageID == "" || reqs[0].Status != 400 || reqs[1].Status != 500 {
		t.Errorf("recorded %+v", reqs)
	}
	if reqs[0].PhoneNumberID != "123" || reqs[0].Version != whatsapptest.Version || reqs[0].Message.Text.Body != "hi" {
		t.Errorf("decoded request %+v", reqs[0])
	}
	srv.Reset()
	if status, _, _ := post(t, srv, "2"); status != 200 || len(srv.Requests()) != 1 {
		t.Errorf("after Reset: status %d, %d requests", status, len(srv.Requests()))
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv := whatsapptest.NewServer()
	defer srv.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { post(t, srv, "1") })
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range srv.Requests() {
		ids[r.MessageID] = true
	}
	if len(ids) != 20 {
		t.Errorf("%d distinct message ids for 20 sends", len(ids))
	}
}

func TestFixtures(t *testing.T) {
	names := whatsapptest.Fixtures()
	if len(names) != 11 {
		t.Fatalf("Fixtures() = %v", names)
	}
	for _, n := range names {
		if !json.Valid(whatsapptest.Fixture(n)) {
			t.Errorf("%s is not JSON", n)
		}
	}
	r := whatsapptest.FixtureRequest("/webhooks/whatsapp", names[0], "s")
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=") {
		t.Errorf("FixtureRequest: %s %v", r.Method, r.Header)
	}
	if r := whatsapptest.SignedRequest("/x", []byte("{}"), ""); r.Header.Get("X-Hub-Signature-256") != "" {
		t.Error("SignedRequest without a secret signed anyway")
	}
	defer func() {
		if recover() == nil {
			t.Error("Fixture of an unknown name did not panic")
		}
	}()
	whatsapptest.Fixture("nope.json")
}
