package whatsapptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// fixtures holds real Cloud API webhook bodies, published by Meta or taken
// from public test suites; fixtures/README.md says where each comes from.
// The whatsapp package's testdata holds the same files, and its tests
// check that the two copies agree.
//
//go:embed fixtures/*.json
var fixtures embed.FS

// Fixtures lists the names of the embedded webhook fixtures, sorted.
func Fixtures() []string {
	entries, _ := fs.ReadDir(fixtures, "fixtures")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Fixture returns the exact bytes of the named fixture, such as
// "meta_docs_inbound_text.json". It panics when there is none, which in a
// test is a typo.
func Fixture(name string) []byte {
	b, err := fixtures.ReadFile(path.Join("fixtures", name))
	if err != nil {
		panic("whatsapptest: no fixture " + name)
	}
	return b
}

// Sign returns the X-Hub-Signature-256 value Meta sends with body:
// "sha256=" and the lowercase hex HMAC-SHA256 of body keyed with secret.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds the POST Meta would send to target (a URL or a
// path) with body, signed with secret, ready for a handler's ServeHTTP
// or, with RequestURI cleared, for an http.Client. An empty secret leaves
// the signature header out.
func SignedRequest(target string, body []byte, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "facebookexternalua")
	if secret != "" {
		r.Header.Set("X-Hub-Signature-256", Sign(body, secret))
	}
	return r
}

// FixtureRequest is SignedRequest with the named fixture as body.
func FixtureRequest(target, name, secret string) *http.Request {
	return SignedRequest(target, Fixture(name), secret)
}

// HandshakeRequest builds the GET Meta sends to verify a webhook URL.
func HandshakeRequest(target, verifyToken, challenge string) *http.Request {
	q := url.Values{}
	q.Set("hub.mode", "subscribe")
	q.Set("hub.verify_token", verifyToken)
	q.Set("hub.challenge", challenge)
	u, err := url.Parse(target)
	if err != nil {
		panic("whatsapptest: bad target " + target)
	}
	u.RawQuery = q.Encode()
	return httptest.NewRequest(http.MethodGet, u.String(), nil)
}

// The builders below write bodies in the layout of the fixtures, for tests
// that need ids, numbers or times of their own.

type obj = map[string]any

func envelope(phoneNumberID, field string, value obj) []byte {
	value["messaging_product"] = "whatsapp"
	value["metadata"] = obj{"display_phone_number": "15550783881", "phone_number_id": phoneNumberID}
	b, err := json.Marshal(obj{
		"object": "whatsapp_business_account",
		"entry": []obj{{
			"id":      "102290129340398",
			"changes": []obj{{"value": value, "field": field}},
		}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// TextWebhook is the body of an inbound text message from the customer
// waID (with profile name) to the business number phoneNumberID.
func TextWebhook(phoneNumberID, waID, name, messageID, text string, at time.Time) []byte {
	return envelope(phoneNumberID, "messages", obj{
		"contacts": []obj{{"profile": obj{"name": name}, "wa_id": waID}},
		"messages": []obj{{
			"from": waID, "id": messageID, "timestamp": unix(at),
			"type": "text", "text": obj{"body": text},
		}},
	})
}

// ButtonWebhook is the body of a customer tapping an interactive reply
// button (id, title).
func ButtonWebhook(phoneNumberID, waID, name, messageID, buttonID, title string, at time.Time) []byte {
	return envelope(phoneNumberID, "messages", obj{
		"contacts": []obj{{"profile": obj{"name": name}, "wa_id": waID}},
		"messages": []obj{{
			"from": waID, "id": messageID, "timestamp": unix(at),
			"type": "interactive",
			"interactive": obj{
				"type":         "button_reply",
				"button_reply": obj{"id": buttonID, "title": title},
			},
		}},
	})
}

// StatusWebhook is the body of a delivery status of the message
// messageID to recipient. A non-zero errorCode adds an errors item, with
// Meta's title for the codes MetaError knows.
func StatusWebhook(phoneNumberID, recipient, messageID, status string, at time.Time, errorCode int) []byte {
	st := obj{"id": messageID, "status": status, "timestamp": unix(at), "recipient_id": recipient}
	if errorCode != 0 {
		r := MetaError(errorCode)
		title := strings.TrimPrefix(r.Message, "(#"+strconv.Itoa(errorCode)+") ")
		st["errors"] = []obj{{
			"code": errorCode, "title": title, "message": title,
			"error_data": obj{"details": r.Details},
		}}
	}
	return envelope(phoneNumberID, "messages", obj{"statuses": []obj{st}})
}

// PreferenceWebhook is the body of a user_preferences change: value
// "stop" or "resume" of marketing messages.
func PreferenceWebhook(phoneNumberID, waID, value string, at time.Time) []byte {
	detail := "User requested to stop marketing messages"
	if value == "resume" {
		detail = "User requested to resume marketing messages"
	}
	return envelope(phoneNumberID, "user_preferences", obj{
		"contacts": []obj{{"wa_id": waID}},
		"user_preferences": []obj{{
			"wa_id": waID, "detail": detail, "category": "marketing_messages",
			"value": value, "timestamp": at.Unix(),
		}},
	})
}
