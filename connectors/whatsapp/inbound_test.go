package whatsapp_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
	"github.com/triage-dev/triage/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden and testdata/requests")

// payloads lists every webhook body in testdata: the real fixtures and the
// synthetic ones. Golden names flatten the directory: synthetic_kinds.json.
func payloads(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, pattern := range []string{"testdata/*.json", "testdata/synthetic/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			if filepath.Base(filepath.Dir(f)) == "synthetic" {
				name = "synthetic_" + name
			}
			out[name] = b
		}
	}
	if len(out) < 15 {
		t.Fatalf("found %d payloads in testdata, want the 11 fixtures and the synthetic ones", len(out))
	}
	return out
}

// checkBatch fails unless every event of b could go to the engine as is
// and every status is usable. It is shared by the golden test and the fuzzer.
func checkBatch(t *testing.T, b *whatsapp.Batch) {
	t.Helper()
	seen := map[string]bool{}
	for i, ev := range b.Events {
		switch {
		case ev.ID == "":
			t.Errorf("event %d has no id: %+v", i, ev)
		case !schemas.IsEventType(ev.Type):
			t.Errorf("event %s has type %q", ev.ID, ev.Type)
		case ev.At.IsZero():
			t.Errorf("event %s has no time", ev.ID)
		case ev.Conversation == "":
			t.Errorf("event %s has no conversation", ev.ID)
		case ev.Contact == nil || ev.Contact.ID == "":
			t.Errorf("event %s has no contact id", ev.ID)
		case ev.Type == schemas.MessageReceived && ev.Kind == "":
			t.Errorf("message %s has no kind", ev.ID)
		case seen[ev.ID]:
			t.Errorf("event id %s appears twice", ev.ID)
		}
		seen[ev.ID] = true
		if _, _, ok := whatsapp.SplitConversationID(ev.Conversation); !ok {
			t.Errorf("event %s: conversation %q does not split", ev.ID, ev.Conversation)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Errorf("event %s does not marshal: %v", ev.ID, err)
		}
	}
	keys := map[string]bool{}
	for i, s := range b.Statuses {
		if s.ID == "" || s.Status == "" || s.Timestamp.IsZero() {
			t.Errorf("status %d is incomplete: %+v", i, s)
		}
		if keys[s.Key()] {
			t.Errorf("status key %s appears twice", s.Key())
		}
		keys[s.Key()] = true
	}
}

func TestParseGolden(t *testing.T) {
	for name, body := range payloads(t) {
		t.Run(name, func(t *testing.T) {
			b, err := whatsapp.Parse(body, "")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkBatch(t, b)
			got, err := json.MarshalIndent(b, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%s) differs from %s:\ngot:\n%s\nwant:\n%s", name, golden, got, want)
			}
		})
	}
}

func readPayload(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, path string) *whatsapp.Batch {
	t.Helper()
	b, err := whatsapp.Parse(readPayload(t, path), "")
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return b
}

// TestParseFixtures states by hand what the goldens hold for each real
// fixture, so a wrong golden written with -update still fails here.
func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file     string
		events   []schemas.Event
		statuses []whatsapp.Status
	}{
		{
			file: "meta_docs_inbound_text.json",
			events: []schemas.Event{{
				ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", Type: schemas.MessageReceived,
				At: time.Unix(1749416383, 0).UTC(), Conversation: "wa:106540352242922:16505551234",
				Contact: &schemas.Contact{ID: "16505551234", Name: "Sheena Nelson", Phone: "+16505551234"},
				Text:    "Does it come in another color?", Kind: "text",
			}},
		},
		{
			file: "bindambc_inbound_text.json",
			events: []schemas.Event{{
				ID: "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==", Type: schemas.MessageReceived,
				At: time.Unix(1672947578, 0).UTC(), Conversation: "wa:409552778964973:1111111111111",
				Contact: &schemas.Contact{ID: "1111111111111", Name: "Mauricio Binda", Phone: "+1111111111111"},
				Text:    "hi everyone!", Kind: "text",
			}},
		},
		{
			file: "meta_docs_inbound_interactive_button_reply.json",
			events: []schemas.Event{{
				ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=", Type: schemas.MessageReceived,
				At: time.Unix(1750025136, 0).UTC(), Conversation: "wa:106540352242922:16505551234",
				Contact: &schemas.Contact{ID: "16505551234", Name: "Sheena Nelson", Phone: "+16505551234"},
				Text:    "Cancel", Payload: "cancel-button", Kind: "interactive",
			}},
		},
		{
			file: "pywa_inbound_interactive_button_reply.json",
			events: []schemas.Event{{
				ID: "wamid.xyzxyz", Type: schemas.MessageReceived,
				At: time.Unix(1698266730, 0).UTC(), Conversation: "wa:1122334455667:972987654321",
				Contact: &schemas.Contact{ID: "972987654321", Name: "Test Name", Phone: "+972987654321"},
				Text:    "title", Payload: "callback_data", Kind: "interactive",
			}},
		},
		{
			file: "pywa_inbound_interactive_list_reply.json",
			events: []schemas.Event{{
				ID: "wamid.zyzxyz", Type: schemas.MessageReceived,
				At: time.Unix(1698266905, 0).UTC(), Conversation: "wa:1122334455667:972987654321",
				Contact: &schemas.Contact{ID: "972987654321", Name: "Test Name", Phone: "+972987654321"},
				Text:    "title", Payload: "callback_data", Kind: "interactive",
			}},
		},
		{
			file: "bindambc_inbound_template_quick_reply_button.json",
			events: []schemas.Event{{
				ID: "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==", Type: schemas.MessageReceived,
				At: time.Unix(1673023653, 0).UTC(), Conversation: "wa:409552778964973:1111111111111",
				Contact: &schemas.Contact{ID: "1111111111111", Name: "Mauricio Binda", Phone: "+1111111111111"},
				Text:    "SIM", Payload: "SIM", Kind: "button",
			}},
		},
		{
			file: "meta_docs_user_preferences_resume.json",
			events: []schemas.Event{{
				ID: "wa:pref:106540352242922:16505551234:resume:1731705721", Type: schemas.ContactOptedIn,
				At: time.Unix(1731705721, 0).UTC(), Conversation: "wa:106540352242922:16505551234",
				Contact: &schemas.Contact{ID: "16505551234", Phone: "+16505551234"},
			}},
		},
		{
			file:   "meta_docs_status_sent.json",
			events: []schemas.Event{},
			statuses: []whatsapp.Status{{
				ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=", Recipient: "16505551234",
				Status: "sent", Timestamp: time.Unix(1750030073, 0).UTC(), Conversation: "wa:106540352242922:16505551234",
			}},
		},
		{
			file:   "bindambc_status_delivered.json",
			events: []schemas.Event{},
			statuses: []whatsapp.Status{{
				ID: "wamid.nBgN6TUyN2k5NzAzM5kzNhUCABI8FDNFQjAxQkE5REI4NEUzQ5Y5QTNgAA==", Recipient: "1111111111111",
				Status: "delivered", Timestamp: time.Unix(1673020317, 0).UTC(), Conversation: "wa:409552778964973:1111111111111",
			}},
		},
		{
			file:   "bindambc_status_failed_131047.json",
			events: []schemas.Event{},
			statuses: []whatsapp.Status{{
				ID: "wamid.HBgNN5NzAzMDkTUyNzkzNhUEjA1MjUwNCAUIyNEYUQ0OTVGNTY0MwA=", Recipient: "5511111111111",
				Status: "failed", Timestamp: time.Unix(1682651887, 0).UTC(), Conversation: "wa:109999999999999:5511111111111",
				ErrorCode: 131047, ErrorTitle: "Re-engagement message",
				ErrorDetails: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
			}},
		},
		{
			file:   "meta_docs_status_failed_131049.json",
			events: []schemas.Event{},
			statuses: []whatsapp.Status{{
				ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA", Recipient: "16505551234",
				Status: "failed", Timestamp: time.Unix(1751142888, 0).UTC(), Conversation: "wa:106540352242922:16505551234",
				ErrorCode: 131049, ErrorTitle: "This message was not delivered to maintain healthy ecosystem engagement.",
				ErrorDetails: "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
			}},
		},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			b := mustParse(t, tt.file)
			if !reflect.DeepEqual(b.Events, tt.events) {
				t.Errorf("events:\ngot  %s\nwant %s", jsonString(b.Events), jsonString(tt.events))
			}
			want := tt.statuses
			if want == nil {
				want = []whatsapp.Status{}
			}
			if !reflect.DeepEqual(b.Statuses, want) {
				t.Errorf("statuses:\ngot  %s\nwant %s", jsonString(b.Statuses), jsonString(want))
			}
			if len(b.Skipped) != 0 {
				t.Errorf("skipped %v in a real fixture", b.Skipped)
			}
		})
	}
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("fixture %s has no hand-written expectation", f)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseMultipleContactsAndEntries(t *testing.T) {
	b := mustParse(t, "synthetic/multi_contacts.json")
	type row struct{ id, conv, name, text, kind string }
	var got []row
	for _, ev := range b.Events {
		got = append(got, row{ev.ID, ev.Conversation, ev.Contact.Name, ev.Text, ev.Kind})
	}
	want := []row{
		{"wamid.SYN-multi-1", "wa:106540352242922:16505551234", "Sheena Nelson", "Where is my order?", "text"},
		{"wamid.SYN-multi-2", "wa:106540352242922:447700900123", "Alex Moreau", "I need a human", "text"},
		{"wamid.SYN-multi-3", "wa:106540352242922:16505551234", "Sheena Nelson", "the box arrived broken", "image"},
		{"wamid.SYN-multi-4", "wa:200000000000001:16505551234", "Sheena Nelson", "same customer, other business number", "text"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\ngot  %+v\nwant %+v", got, want)
	}
	if len(b.Statuses) != 0 || len(b.Skipped) != 0 {
		t.Errorf("statuses %v, skipped %v: the template status change must be ignored", b.Statuses, b.Skipped)
	}
}

func TestParseKinds(t *testing.T) {
	b := mustParse(t, "synthetic/kinds.json")
	type row struct{ kind, text, payload string }
	want := map[string]row{
		"wamid.SYN-kind-video":            {"video", "look at this", ""},
		"wamid.SYN-kind-document":         {"document", "invoice 42", ""},
		"wamid.SYN-kind-audio":            {"audio", "", ""},
		"wamid.SYN-kind-sticker":          {"sticker", "", ""},
		"wamid.SYN-kind-image-nocaption":  {"image", "", ""},
		"wamid.SYN-kind-location-named":   {"location", "Main Street Beach, 5 Main Street, Santa Cruz, CA", ""},
		"wamid.SYN-kind-location-bare":    {"location", "51.5,-0.1276", ""},
		"wamid.SYN-kind-reaction":         {"reaction", "\U0001F44D", ""},
		"wamid.SYN-kind-reaction-removed": {"reaction", "", ""},
		"wamid.SYN-kind-list":             {"interactive", "Billing", "opt-billing"},
		"wamid.SYN-kind-flow":             {"interactive", "Sent", `{"flow_token":"t1","rating":"5"}`},
		"wamid.SYN-kind-order":            {"order", "", ""},
		"wamid.SYN-kind-unsupported":      {"unsupported", "", ""},
		"wamid.SYN-kind-contacts":         {"contacts", "", ""},
		"wamid.SYN-kind-none":             {"unknown", "", ""},
	}
	if len(b.Events) != len(want) {
		t.Fatalf("got %d events, want %d", len(b.Events), len(want))
	}
	for _, ev := range b.Events {
		if got := (row{ev.Kind, ev.Text, ev.Payload}); got != want[ev.ID] {
			t.Errorf("%s: got %+v, want %+v", ev.ID, got, want[ev.ID])
		}
	}
}

func TestParseStatusesAndPreferences(t *testing.T) {
	b := mustParse(t, "synthetic/statuses_preferences.json")
	var keys []string
	for _, s := range b.Statuses {
		keys = append(keys, s.Key())
	}
	wantKeys := []string{
		"wamid.SYN-out-1/sent", "wamid.SYN-out-1/delivered", "wamid.SYN-out-1/read",
		"wamid.SYN-out-2/failed", "wamid.SYN-out-3/failed",
	}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("status keys %v, want %v (the repeated read dropped)", keys, wantKeys)
	}
	if cb := b.Statuses[0].CallbackData; cb != "evt-7/escalate/reply#0" {
		t.Errorf("callback data %q", cb)
	}
	if s := b.Statuses[4]; s.ErrorCode != 131026 || s.ErrorTitle != "Message undeliverable" {
		t.Errorf("undeliverable status: %+v (title falls back to message)", s)
	}
	var got []string
	for _, ev := range b.Events {
		got = append(got, ev.Type+" "+ev.ID+" "+ev.Conversation)
		if !ev.Contact.OptedOut {
			t.Errorf("%s: contact not marked opted out", ev.ID)
		}
	}
	want := []string{
		"contact.opted_out wa:optout:wamid.SYN-out-2 wa:106540352242922:447700900123",
		"contact.opted_out wa:pref:106540352242922:447700900123:stop:1731705700 wa:106540352242922:447700900123",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\ngot  %q\nwant %q", got, want)
	}
	if name := b.Events[1].Contact.Name; name != "Alex Moreau" {
		t.Errorf("preference contact name %q", name)
	}
}

func TestParseSkips(t *testing.T) {
	b := mustParse(t, "synthetic/skipped.json")
	if len(b.Events) != 1 || b.Events[0].ID != "wamid.SYN-skip-ok" {
		t.Errorf("events %s, want only wamid.SYN-skip-ok once", jsonString(b.Events))
	}
	if len(b.Statuses) != 0 {
		t.Errorf("statuses %v, want none", b.Statuses)
	}
	wantIDs := []string{
		"", "wamid.SYN-skip-badtime", "wamid.SYN-skip-notime", "wamid.SYN-skip-shape", "wamid.SYN-skip-nofrom", "",
		"", "wamid.SYN-skip-status",
		"16505551234", "16505551234", "",
	}
	var ids []string
	for _, s := range b.Skipped {
		ids = append(ids, s.ID)
		if s.Reason == "" || s.Field == "" {
			t.Errorf("skip without field or reason: %+v", s)
		}
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("skipped ids %q, want %q\n%s", ids, wantIDs, jsonString(b.Skipped))
	}
}

func TestParseBusinessNumberFallback(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"contacts":[{"profile":{"name":"Ann"},"wa_id":"4915112345678"}],
		"messages":[{"from":"4915112345678","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":"hallo"}}]}}]}]}`)
	b, err := whatsapp.Parse(body, "555000")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Events[0].Conversation; got != "wa:555000:4915112345678" {
		t.Errorf("conversation %q, want the configured number when metadata has none", got)
	}
	// The metadata wins when present.
	b = mustParse(t, "meta_docs_inbound_text.json")
	b2, err := whatsapp.Parse(readPayload(t, "meta_docs_inbound_text.json"), "999")
	if err != nil {
		t.Fatal(err)
	}
	if b.Events[0].Conversation != b2.Events[0].Conversation {
		t.Errorf("businessNumber overrode the metadata: %q", b2.Events[0].Conversation)
	}
}

func TestParseMalformed(t *testing.T) {
	text := readPayload(t, "meta_docs_inbound_text.json")
	tests := map[string]string{
		"empty":              "",
		"not json":           "hello",
		"truncated":          string(text[:len(text)/2]),
		"trailing garbage":   string(text) + "}",
		"array":              "[]",
		"null":               "null",
		"no object":          `{"entry":[]}`,
		"other object":       `{"object":"page","entry":[]}`,
		"entry not array":    `{"object":"whatsapp_business_account","entry":{}}`,
		"changes not array":  `{"object":"whatsapp_business_account","entry":[{"changes":"x"}]}`,
		"messages not array": `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":{"id":"wamid.X"}}}]}]}`,
		"metadata wrong":     `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":7,"messages":[{"from":"1","id":"wamid.X","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}]}]}`,
		// A valid message before the broken change must not leak out.
		"half good": `{"object":"whatsapp_business_account","entry":[{"changes":[
			{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.OK","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}},
			{"field":"messages","value":{"statuses":"broken"}}]}]}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := whatsapp.Parse([]byte(body), "1")
			if err == nil {
				t.Fatalf("Parse accepted it: %s", jsonString(b))
			}
			if b != nil {
				t.Errorf("Parse returned a batch with its error: %s", jsonString(b))
			}
			if !strings.HasPrefix(err.Error(), "whatsapp: ") {
				t.Errorf("error %q does not name the package", err)
			}
		})
	}
}

func TestParseEmptyWebhook(t *testing.T) {
	b, err := whatsapp.Parse([]byte(`{"object":"whatsapp_business_account","entry":[]}`), "1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Events == nil || b.Statuses == nil || len(b.Events)+len(b.Statuses) != 0 {
		t.Errorf("want empty, non-nil slices: %#v", b)
	}
}

const vector = "sha256=1c041e1c07f50386213ac582d2e17d24d70f1ed42949a6e5a5607057b805b5fc"

func TestVerifySignature(t *testing.T) {
	body := readPayload(t, "meta_docs_inbound_text.json")
	tampered := bytes.Replace(body, []byte("another color"), []byte("another colour"), 1)
	flipped := slices.Clone(body)
	flipped[len(flipped)/2] ^= 1
	tests := []struct {
		name   string
		body   []byte
		header string
		secret string
		want   bool
	}{
		{"test vector", body, vector, "test_app_secret", true},
		{"surrounding spaces", body, "  " + vector + " ", "test_app_secret", true},
		{"tampered body", tampered, vector, "test_app_secret", false},
		{"one bit flipped", flipped, vector, "test_app_secret", false},
		{"trailing newline added", append(slices.Clone(body), '\n'), vector, "test_app_secret", false},
		{"wrong secret", body, vector, "other_secret", false},
		{"empty secret", body, whatsapptest.Sign(body, ""), "", false},
		{"missing header", body, "", "test_app_secret", false},
		{"no prefix", body, strings.TrimPrefix(vector, "sha256="), "test_app_secret", false},
		{"sha1 prefix", body, "sha1=" + strings.TrimPrefix(vector, "sha256="), "test_app_secret", false},
		{"prefix only", body, "sha256=", "test_app_secret", false},
		{"short digest", body, vector[:len(vector)-2], "test_app_secret", false},
		{"long digest", body, vector + "00", "test_app_secret", false},
		{"not hex", body, "sha256=" + strings.Repeat("zz", 32), "test_app_secret", false},
		{"other digest", body, "sha256=" + strings.Repeat("00", 32), "test_app_secret", false},
	}
	for _, tt := range tests {
		if got := whatsapp.VerifySignature(tt.body, tt.header, tt.secret); got != tt.want {
			t.Errorf("%s: VerifySignature = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := whatsapptest.Sign(body, "test_app_secret"); got != vector {
		t.Errorf("whatsapptest.Sign = %s, want the README's vector", got)
	}
	// Every fixture verifies under the fake's independent signer, and
	// not under another secret.
	for name, b := range payloads(t) {
		h := whatsapptest.Sign(b, "s3cret")
		if !whatsapp.VerifySignature(b, h, "s3cret") || whatsapp.VerifySignature(b, h, "s3cret2") {
			t.Errorf("%s: signature round trip failed", name)
		}
	}
}

func TestVerifySignatureOnRequest(t *testing.T) {
	r := whatsapptest.FixtureRequest("/webhooks/whatsapp", "meta_docs_inbound_text.json", "test_app_secret")
	body := new(bytes.Buffer)
	if _, err := body.ReadFrom(r.Body); err != nil {
		t.Fatal(err)
	}
	if h := r.Header.Get(whatsapp.SignatureHeader); h != vector {
		t.Errorf("signature header %q", h)
	}
	if !whatsapp.VerifySignature(body.Bytes(), r.Header.Get(whatsapp.SignatureHeader), "test_app_secret") {
		t.Error("a fixture request does not verify")
	}
}

func TestVerifyHandshake(t *testing.T) {
	q := func(mode, token, challenge string) url.Values {
		v := url.Values{}
		if mode != "" {
			v.Set("hub.mode", mode)
		}
		if token != "" {
			v.Set("hub.verify_token", token)
		}
		if challenge != "" {
			v.Set("hub.challenge", challenge)
		}
		return v
	}
	tests := []struct {
		name   string
		query  url.Values
		token  string
		want   string
		wantOK bool
	}{
		{"good", q("subscribe", "meatyhamhock", "1158201444"), "meatyhamhock", "1158201444", true},
		{"wrong token", q("subscribe", "meatyhamhocks", "1158201444"), "meatyhamhock", "", false},
		{"token prefix", q("subscribe", "meaty", "1158201444"), "meatyhamhock", "", false},
		{"no token sent", q("subscribe", "", "1158201444"), "meatyhamhock", "", false},
		{"nothing configured", q("subscribe", "", "1158201444"), "", "", false},
		{"wrong mode", q("unsubscribe", "meatyhamhock", "1158201444"), "meatyhamhock", "", false},
		{"no mode", q("", "meatyhamhock", "1158201444"), "meatyhamhock", "", false},
		{"no challenge", q("subscribe", "meatyhamhock", ""), "meatyhamhock", "", false},
	}
	for _, tt := range tests {
		got, ok := whatsapp.VerifyHandshake(tt.query, tt.token)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: VerifyHandshake = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	r := whatsapptest.HandshakeRequest("http://127.0.0.1/webhooks/whatsapp", "tok", "42")
	if got, ok := whatsapp.VerifyHandshake(r.URL.Query(), "tok"); !ok || got != "42" {
		t.Errorf("HandshakeRequest: VerifyHandshake = %q, %v", got, ok)
	}
}

func TestConversationID(t *testing.T) {
	id := whatsapp.ConversationID("106540352242922", "16505551234")
	if id != "wa:106540352242922:16505551234" {
		t.Fatalf("ConversationID = %q", id)
	}
	phone, wa, ok := whatsapp.SplitConversationID(id)
	if !ok || phone != "106540352242922" || wa != "16505551234" {
		t.Errorf("SplitConversationID(%q) = %q, %q, %v", id, phone, wa, ok)
	}
	for _, bad := range []string{"", "c1", "wa:", "wa:123", "wa:123:", "wa:1:2:3", "sl:1:2"} {
		if _, _, ok := whatsapp.SplitConversationID(bad); ok {
			t.Errorf("SplitConversationID(%q) accepted it", bad)
		}
	}
}

// TestFixturesInSync checks that the fake's embedded fixtures are the
// files in testdata, byte for byte.
func TestFixturesInSync(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := whatsapptest.Fixture(filepath.Base(f)); !bytes.Equal(got, want) {
			t.Errorf("whatsapptest fixture %s differs from %s", filepath.Base(f), f)
		}
	}
	if !slices.Equal(names, whatsapptest.Fixtures()) {
		t.Errorf("whatsapptest.Fixtures() = %v, testdata has %v", whatsapptest.Fixtures(), names)
	}
}

// TestWebhookBuilders checks that the fake's payload builders produce
// what Parse reads.
func TestWebhookBuilders(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 2, 0, 0, time.UTC)
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"text", whatsapptest.TextWebhook("1065", "447700900123", "Alex", "wamid.T1", "refund please", at),
			`{"events":[{"id":"wamid.T1","type":"message.received","at":"2026-11-21T10:02:00Z","conversation":"wa:1065:447700900123","contact":{"id":"447700900123","name":"Alex","phone":"+447700900123"},"text":"refund please","kind":"text"}],"statuses":[]}`},
		{"button", whatsapptest.ButtonWebhook("1065", "447700900123", "Alex", "wamid.B1", "human", "Talk to a human", at),
			`{"events":[{"id":"wamid.B1","type":"message.received","at":"2026-11-21T10:02:00Z","conversation":"wa:1065:447700900123","contact":{"id":"447700900123","name":"Alex","phone":"+447700900123"},"text":"Talk to a human","kind":"interactive","payload":"human"}],"statuses":[]}`},
		{"status", whatsapptest.StatusWebhook("1065", "447700900123", "wamid.O1", "failed", at, 131047),
			`{"events":[],"statuses":[{"id":"wamid.O1","recipient":"447700900123","status":"failed","timestamp":"2026-11-21T10:02:00Z","conversation":"wa:1065:447700900123","error_code":131047,"error_title":"Re-engagement message","error_details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}]}`},
		{"stop", whatsapptest.PreferenceWebhook("1065", "447700900123", "stop", at),
			`{"events":[{"id":"wa:pref:1065:447700900123:stop:1795255320","type":"contact.opted_out","at":"2026-11-21T10:02:00Z","conversation":"wa:1065:447700900123","contact":{"id":"447700900123","phone":"+447700900123","opted_out":true}}],"statuses":[]}`},
	}
	for _, tt := range tests {
		b, err := whatsapp.Parse(tt.body, "")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := jsonString(b); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}
