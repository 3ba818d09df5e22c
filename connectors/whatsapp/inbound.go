package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/triage-dev/triage/schemas"
)

// MaxBody is the largest webhook body triage accepts, in bytes. Parse does
// not check it: the HTTP layer enforces it while reading the request
// (http.MaxBytesReader) and answers 413 Request Entity Too Large beyond
// it, before the signature is computed. Meta's webhook bodies are a few
// kilobytes; three megabytes leaves room for large batches.
const MaxBody = 3 << 20

// SignatureHeader is the header that carries the body's signature.
const SignatureHeader = "X-Hub-Signature-256"

// ObjectWhatsApp is the "object" of every WhatsApp Business webhook body.
const ObjectWhatsApp = "whatsapp_business_account"

// VerifyHandshake answers Meta's subscription handshake, the GET request
// Meta sends when a webhook URL is registered. It reports ok when
// hub.mode is "subscribe" and hub.verify_token equals verifyToken
// (compared in constant time); challenge is then hub.challenge, which the
// HTTP layer must echo as the plain-text body of a 200 answer. Otherwise
// ok is false and the answer should be 403. An empty verifyToken never
// matches, so a daemon without one configured refuses every handshake.
func VerifyHandshake(query url.Values, verifyToken string) (challenge string, ok bool) {
	if verifyToken == "" || query.Get("hub.mode") != "subscribe" {
		return "", false
	}
	challenge = query.Get("hub.challenge")
	if challenge == "" {
		return "", false
	}
	// Hashing both sides first makes the comparison constant time in
	// the tokens' lengths too.
	got := sha256.Sum256([]byte(query.Get("hub.verify_token")))
	want := sha256.Sum256([]byte(verifyToken))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return "", false
	}
	return challenge, true
}

// VerifySignature reports whether header, the value of the
// X-Hub-Signature-256 header, is "sha256=" followed by the hex HMAC-SHA256
// of body keyed with appSecret. body must be the raw bytes as received:
// re-encoding parsed JSON changes them. The digests are compared in
// constant time. A missing or malformed header, or an empty appSecret,
// gives false.
func VerifySignature(body []byte, header, appSecret string) bool {
	if appSecret == "" {
		return false
	}
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(hexSum) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// ConversationID is the triage conversation id of the customer waID
// writing to the business number phoneNumberID: "wa:<phoneNumberID>:<waID>".
func ConversationID(phoneNumberID, waID string) string {
	return "wa:" + phoneNumberID + ":" + waID
}

// SplitConversationID takes apart an id made by ConversationID. ok is
// false when id is not a WhatsApp conversation id or names no customer.
func SplitConversationID(id string) (phoneNumberID, waID string, ok bool) {
	rest, found := strings.CutPrefix(id, "wa:")
	if !found {
		return "", "", false
	}
	phoneNumberID, waID, found = strings.Cut(rest, ":")
	if !found || waID == "" || strings.Contains(waID, ":") {
		return "", "", false
	}
	return phoneNumberID, waID, true
}

// Batch is what one webhook body holds, in the order of the body.
type Batch struct {
	// Events are the customer messages (message.received) and the
	// marketing consent changes (contact.opted_out, contact.opted_in),
	// ready for the engine.
	Events []schemas.Event `json:"events"`
	// Statuses are delivery reports on messages triage sent.
	Statuses []Status `json:"statuses"`
	// Skipped lists the items of the body that were left out, and why:
	// a message without an id, an unreadable timestamp, a preference
	// change of another category. The HTTP layer should log them and
	// still answer 200, since Meta's retries would not change them.
	Skipped []Skip `json:"skipped,omitempty"`
}

// Status is a delivery report on an outbound message (a "statuses" item).
// It is not an event: the daemon uses it to update the delivery of what
// it sent. Deduplicate on Key.
type Status struct {
	// ID is the id of the message the report is about, as the Client's
	// send returned it ("wamid....").
	ID string `json:"id"`
	// Recipient is the customer's wa_id.
	Recipient string `json:"recipient"`
	// Status is "sent", "delivered", "read" or "failed" (other values
	// are kept as given).
	Status string `json:"status"`
	// Timestamp is when the status changed.
	Timestamp time.Time `json:"timestamp"`
	// Conversation is the triage conversation id (see ConversationID).
	Conversation string `json:"conversation,omitempty"`
	// CallbackData is the biz_opaque_callback_data Meta echoes: the
	// idempotency key the Client sent the message with.
	CallbackData string `json:"callback_data,omitempty"`
	// ErrorCode, ErrorTitle and ErrorDetails describe the first error of
	// a failed status (errors[0].code, .title and .error_data.details).
	ErrorCode    int    `json:"error_code,omitempty"`
	ErrorTitle   string `json:"error_title,omitempty"`
	ErrorDetails string `json:"error_details,omitempty"`
}

// Key is the deduplication key of a status: its id and its status, since
// one message goes through several statuses.
func (s Status) Key() string {
	return s.ID + "/" + s.Status
}

// Skip is an item of a webhook body that Parse left out.
type Skip struct {
	// Field is the array the item was in: "messages", "statuses" or
	// "user_preferences".
	Field string `json:"field"`
	// ID is the item's id, when it had one.
	ID string `json:"id,omitempty"`
	// Reason says why it was left out.
	Reason string `json:"reason"`
}

// The webhook body, as far as triage reads it. Unknown keys are ignored.
type webhook struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// value is the value of a "messages" or "user_preferences" change. The
// items stay raw so that one odd item is skipped rather than failing
// the whole body.
type value struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts        []json.RawMessage `json:"contacts"`
	Messages        []json.RawMessage `json:"messages"`
	Statuses        []json.RawMessage `json:"statuses"`
	UserPreferences []json.RawMessage `json:"user_preferences"`
}

type wireContact struct {
	WaID    string `json:"wa_id"`
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
}

type idTitle struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type wireMessage struct {
	From      string     `json:"from"`
	ID        string     `json:"id"`
	Timestamp flexString `json:"timestamp"`
	Type      string     `json:"type"`
	Text      *struct {
		Body string `json:"body"`
	} `json:"text"`
	Interactive *struct {
		Type        string   `json:"type"`
		ButtonReply *idTitle `json:"button_reply"`
		ListReply   *idTitle `json:"list_reply"`
		NfmReply    *struct {
			Body         string `json:"body"`
			ResponseJSON string `json:"response_json"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Button *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Location *struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
		Name      string  `json:"name"`
		Address   string  `json:"address"`
	} `json:"location"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Image    *media `json:"image"`
	Video    *media `json:"video"`
	Document *media `json:"document"`
	Audio    *media `json:"audio"`
	Sticker  *media `json:"sticker"`
}

type media struct {
	Caption string `json:"caption"`
}

type wireStatus struct {
	ID                    string     `json:"id"`
	Status                string     `json:"status"`
	Timestamp             flexString `json:"timestamp"`
	RecipientID           string     `json:"recipient_id"`
	BizOpaqueCallbackData string     `json:"biz_opaque_callback_data"`
	Errors                []struct {
		Code      flexString `json:"code"`
		Title     string     `json:"title"`
		Message   string     `json:"message"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"errors"`
}

type wirePreference struct {
	WaID      string     `json:"wa_id"`
	Detail    string     `json:"detail"`
	Category  string     `json:"category"`
	Value     string     `json:"value"`
	Timestamp flexString `json:"timestamp"`
}

// flexString reads a JSON string or number as its text: Meta sends
// timestamps as strings in messages and statuses but as numbers in
// user_preferences.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a string or a number")
	}
	*f = flexString(n)
	return nil
}

// maxUnix is the last second of year 9999, beyond which a time does not
// print as RFC 3339.
const maxUnix = 253402300799

// unixTime reads a timestamp of Unix seconds.
func unixTime(s flexString) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no timestamp")
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil || n <= 0 || n > maxUnix {
		return time.Time{}, fmt.Errorf("timestamp %q is not a time in Unix seconds", string(s))
	}
	return time.Unix(n, 0).UTC(), nil
}

// Meta error codes that Parse and the Client single out.
const (
	CodeRateLimit       = 130429 // Cloud API throughput reached
	CodeReEngagement    = 131047 // more than 24 hours since the customer last wrote
	CodeUndeliverable   = 131026 // the recipient cannot receive the message
	CodeMarketingOptOut = 131050 // the user stopped marketing messages
	CodePairRateLimit   = 131056 // too many messages to the same recipient
	CodeAuth            = 190    // access token invalid or expired
)

// Parse reads a webhook body (the raw bytes of a POST whose signature
// was verified) into a Batch.
//
// Every message of a "messages" change becomes a message.received event:
// id the message id, at its timestamp, conversation
// ConversationID(phone number id, sender's wa_id), contact {id: wa_id,
// name: profile name, phone: "+" wa_id}, and kind the message type. Text
// is the text body; for an interactive button_reply or list_reply, the
// title, with the reply id as payload; for a template quick-reply
// ("button"), the button text, with its payload; for media, the caption;
// for a location, "name, address" or else "latitude,longitude"; for a
// reaction, the emoji (empty when a reaction is removed). Other kinds keep
// their type as kind and have no text.
//
// Each "statuses" item becomes a Status. A failed status with error
// 131050 (the user stopped marketing messages) also becomes a
// contact.opted_out event with id "wa:optout:<status id>". Each
// marketing_messages item of a "user_preferences" change becomes
// contact.opted_out ("stop") or contact.opted_in ("resume"), with id
// "wa:pref:<phone number id>:<wa_id>:<value>:<timestamp>".
//
// The business phone number is the change's metadata.phone_number_id;
// businessNumber, the phone number id triage is configured with, stands in
// when the metadata lacks it.
//
// Unknown keys and changes of other fields are ignored. A body that is not
// JSON, or not a whatsapp_business_account webhook, is an error and
// yields no batch. An item that cannot be used (no id, no sender, a bad
// timestamp, the wrong shape) is left out and listed in Batch.Skipped.
// Repeats of an event id or status key within the body are dropped.
func Parse(body []byte, businessNumber string) (*Batch, error) {
	var w webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("whatsapp: parse webhook: %w", err)
	}
	if w.Object != ObjectWhatsApp {
		return nil, fmt.Errorf("whatsapp: parse webhook: object is %q, not %q", w.Object, ObjectWhatsApp)
	}
	p := parser{
		batch:    &Batch{Events: []schemas.Event{}, Statuses: []Status{}},
		events:   map[string]bool{},
		statuses: map[string]bool{},
	}
	for _, e := range w.Entry {
		for _, c := range e.Changes {
			if c.Field != "messages" && c.Field != "user_preferences" {
				continue
			}
			var v value
			if len(c.Value) == 0 || string(c.Value) == "null" {
				continue
			}
			if err := json.Unmarshal(c.Value, &v); err != nil {
				return nil, fmt.Errorf("whatsapp: parse webhook: %s change of entry %q: %w", c.Field, e.ID, err)
			}
			phone := v.Metadata.PhoneNumberID
			if phone == "" {
				phone = businessNumber
			}
			p.change(phone, &v)
		}
	}
	return p.batch, nil
}

type parser struct {
	batch    *Batch
	events   map[string]bool
	statuses map[string]bool
}

func (p *parser) skip(field, id, reason string) {
	p.batch.Skipped = append(p.batch.Skipped, Skip{Field: field, ID: id, Reason: reason})
}

func (p *parser) addEvent(ev schemas.Event) {
	if p.events[ev.ID] {
		return
	}
	p.events[ev.ID] = true
	p.batch.Events = append(p.batch.Events, ev)
}

func (p *parser) change(phone string, v *value) {
	names := map[string]string{}
	var only string // the wa_id of the change's single contact, if one
	for _, raw := range v.Contacts {
		var c wireContact
		if json.Unmarshal(raw, &c) != nil || c.WaID == "" {
			continue
		}
		if _, seen := names[c.WaID]; !seen || c.Profile.Name != "" {
			names[c.WaID] = c.Profile.Name
		}
	}
	if len(names) == 1 {
		for id := range names {
			only = id
		}
	}
	for _, raw := range v.Messages {
		p.message(phone, raw, names, only)
	}
	for _, raw := range v.Statuses {
		p.status(phone, raw)
	}
	for _, raw := range v.UserPreferences {
		p.preference(phone, raw, names)
	}
}

// contact is the event contact of a customer.
func contact(waID string, names map[string]string) *schemas.Contact {
	c := &schemas.Contact{ID: waID, Name: names[waID]}
	if isDigits(waID) {
		c.Phone = "+" + waID
	}
	return c
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (p *parser) message(phone string, raw json.RawMessage, names map[string]string, only string) {
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		p.skip("messages", rawID(raw), "unreadable message: "+describe(err))
		return
	}
	if m.ID == "" {
		p.skip("messages", "", "message without id")
		return
	}
	at, err := unixTime(m.Timestamp)
	if err != nil {
		p.skip("messages", m.ID, err.Error())
		return
	}
	from := m.From
	if from == "" {
		from = only
	}
	if from == "" {
		p.skip("messages", m.ID, "message without sender")
		return
	}
	ev := schemas.Event{
		ID:           m.ID,
		Type:         schemas.MessageReceived,
		At:           at,
		Conversation: ConversationID(phone, from),
		Contact:      contact(from, names),
		Kind:         m.Type,
	}
	if ev.Kind == "" {
		ev.Kind = "unknown"
	}
	switch m.Type {
	case "text":
		if m.Text != nil {
			ev.Text = m.Text.Body
		}
	case "interactive":
		if in := m.Interactive; in != nil {
			switch {
			case in.Type == "button_reply" && in.ButtonReply != nil:
				ev.Text, ev.Payload = in.ButtonReply.Title, in.ButtonReply.ID
			case in.Type == "list_reply" && in.ListReply != nil:
				ev.Text, ev.Payload = in.ListReply.Title, in.ListReply.ID
			case in.Type == "nfm_reply" && in.NfmReply != nil:
				ev.Text, ev.Payload = in.NfmReply.Body, in.NfmReply.ResponseJSON
			}
		}
	case "button":
		if m.Button != nil {
			ev.Text, ev.Payload = m.Button.Text, m.Button.Payload
		}
	case "image", "video", "document", "audio", "sticker":
		for _, md := range []*media{m.Image, m.Video, m.Document, m.Audio, m.Sticker} {
			if md != nil && md.Caption != "" {
				ev.Text = md.Caption
				break
			}
		}
	case "location":
		if l := m.Location; l != nil {
			var parts []string
			for _, s := range []string{l.Name, l.Address} {
				if s = strings.TrimSpace(s); s != "" {
					parts = append(parts, s)
				}
			}
			if len(parts) > 0 {
				ev.Text = strings.Join(parts, ", ")
			} else {
				ev.Text = strconv.FormatFloat(l.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(l.Longitude, 'f', -1, 64)
			}
		}
	case "reaction":
		if m.Reaction != nil {
			ev.Text = m.Reaction.Emoji
		}
	}
	p.addEvent(ev)
}

func (p *parser) status(phone string, raw json.RawMessage) {
	var s wireStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		p.skip("statuses", rawID(raw), "unreadable status: "+describe(err))
		return
	}
	if s.ID == "" || s.Status == "" {
		p.skip("statuses", s.ID, "status without id or status")
		return
	}
	at, err := unixTime(s.Timestamp)
	if err != nil {
		p.skip("statuses", s.ID, err.Error())
		return
	}
	st := Status{
		ID:           s.ID,
		Recipient:    s.RecipientID,
		Status:       s.Status,
		Timestamp:    at,
		CallbackData: s.BizOpaqueCallbackData,
	}
	if s.RecipientID != "" {
		st.Conversation = ConversationID(phone, s.RecipientID)
	}
	if len(s.Errors) > 0 {
		e := s.Errors[0]
		st.ErrorCode, _ = strconv.Atoi(string(e.Code))
		st.ErrorTitle = e.Title
		if st.ErrorTitle == "" {
			st.ErrorTitle = e.Message
		}
		st.ErrorDetails = e.ErrorData.Details
	}
	if p.statuses[st.Key()] {
		return
	}
	p.statuses[st.Key()] = true
	p.batch.Statuses = append(p.batch.Statuses, st)

	if st.Status == "failed" && st.ErrorCode == CodeMarketingOptOut && st.Recipient != "" {
		c := contact(st.Recipient, nil)
		c.OptedOut = true
		p.addEvent(schemas.Event{
			ID:           "wa:optout:" + st.ID,
			Type:         schemas.ContactOptedOut,
			At:           at,
			Conversation: st.Conversation,
			Contact:      c,
		})
	}
}

func (p *parser) preference(phone string, raw json.RawMessage, names map[string]string) {
	var u wirePreference
	if err := json.Unmarshal(raw, &u); err != nil {
		p.skip("user_preferences", "", "unreadable preference: "+describe(err))
		return
	}
	if u.WaID == "" {
		p.skip("user_preferences", "", "preference without wa_id")
		return
	}
	if u.Category != "marketing_messages" {
		p.skip("user_preferences", u.WaID, fmt.Sprintf("category %q is not marketing_messages", u.Category))
		return
	}
	var typ string
	switch u.Value {
	case "stop":
		typ = schemas.ContactOptedOut
	case "resume":
		typ = schemas.ContactOptedIn
	default:
		p.skip("user_preferences", u.WaID, fmt.Sprintf("value %q is neither stop nor resume", u.Value))
		return
	}
	at, err := unixTime(u.Timestamp)
	if err != nil {
		p.skip("user_preferences", u.WaID, err.Error())
		return
	}
	c := contact(u.WaID, names)
	c.OptedOut = typ == schemas.ContactOptedOut
	p.addEvent(schemas.Event{
		ID:           fmt.Sprintf("wa:pref:%s:%s:%s:%d", phone, u.WaID, u.Value, at.Unix()),
		Type:         typ,
		At:           at,
		Conversation: ConversationID(phone, u.WaID),
		Contact:      c,
	})
}

// describe says what is wrong with an item that did not decode, in
// terms of the payload rather than of this package's types.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "a JSON " + te.Value + " where an object belongs"
		}
		return fmt.Sprintf("%s is a JSON %s, of the wrong type", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "not JSON"
	}
	return err.Error()
}

// rawID digs the id out of an item that did not decode, for Skip.
func rawID(raw json.RawMessage) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if s, ok := v.ID.(string); ok {
		return s
	}
	return ""
}
