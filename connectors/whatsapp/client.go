package whatsapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultBaseURL is the Graph API root a Client uses when BaseURL is empty.
const DefaultBaseURL = "https://graph.facebook.com/v21.0"

// MaxTextLength is the longest text message body the Cloud API accepts,
// in characters.
const MaxTextLength = 4096

// maxCallbackData is the longest biz_opaque_callback_data Meta accepts.
const maxCallbackData = 512

// maxResponse bounds how much of an answer the Client reads.
const maxResponse = 1 << 20

// defaultHTTP is used when Client.HTTP is nil.
var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Client sends messages through the Cloud API. The zero value is not
// usable: PhoneNumberID and Token are required. A Client is safe for
// concurrent use.
type Client struct {
	// BaseURL is the Graph API root including its version, such as
	// "https://graph.facebook.com/v21.0"; DefaultBaseURL when empty.
	// Tests point it at a whatsapptest server.
	BaseURL string
	// PhoneNumberID is the Cloud API id of the business number messages
	// are sent from.
	PhoneNumberID string
	// Token is the access token, sent as "Authorization: Bearer".
	Token string
	// HTTP is the HTTP client; nil means one with a 30 second timeout.
	HTTP *http.Client
}

// sendRequest is the body of POST /{phone-number-id}/messages.
type sendRequest struct {
	MessagingProduct string        `json:"messaging_product"`
	RecipientType    string        `json:"recipient_type"`
	To               string        `json:"to"`
	Type             string        `json:"type"`
	Text             *textObject   `json:"text,omitempty"`
	Template         *templateBody `json:"template,omitempty"`
	// BizOpaqueCallbackData carries the idempotency key; Meta echoes it
	// in the statuses webhook (Status.CallbackData).
	BizOpaqueCallbackData string `json:"biz_opaque_callback_data,omitempty"`
}

type textObject struct {
	PreviewURL bool   `json:"preview_url"`
	Body       string `json:"body"`
}

type templateBody struct {
	Name       string              `json:"name"`
	Language   templateLanguage    `json:"language"`
	Components []templateComponent `json:"components,omitempty"`
}

type templateLanguage struct {
	Code string `json:"code"`
}

type templateComponent struct {
	Type       string              `json:"type"`
	Parameters []templateParameter `json:"parameters"`
}

type templateParameter struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// sendResponse is Meta's answer to a successful send.
type sendResponse struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// SendText sends a text message to the customer to (a wa_id or a phone
// number) and returns the message id Meta assigned ("wamid...."). Link
// previews are on when the text holds an http or https link. The Cloud
// API has no idempotency header: idempotencyKey travels as
// biz_opaque_callback_data (hashed to "sha256:<hex>" when longer than 512
// bytes), which Meta echoes in the statuses webhook, so a delivery can be
// matched to the outbound work that caused it. A text message is only
// delivered within 24 hours of the customer's last message; outside it the
// error has WindowClosed set.
func (c *Client) SendText(ctx context.Context, to, text, idempotencyKey string) (messageID string, err error) {
	if strings.TrimSpace(text) == "" {
		return "", invalid("text is empty")
	}
	if n := utf8.RuneCountInString(text); n > MaxTextLength {
		return "", invalid(fmt.Sprintf("text has %d characters, more than %d", n, MaxTextLength))
	}
	return c.send(ctx, sendRequest{
		MessagingProduct: "whatsapp",
		RecipientType:    "individual",
		To:               strings.TrimSpace(to),
		Type:             "text",
		Text: &textObject{
			PreviewURL: strings.Contains(text, "https://") || strings.Contains(text, "http://"),
			Body:       text,
		},
		BizOpaqueCallbackData: callbackData(idempotencyKey),
	})
}

// SendTemplate sends the approved template name in language (a code such
// as "en_US") to the customer to, with params filling the body's
// variables {{1}}, {{2}}, ... in order, and returns the message id. A
// template may be sent outside the 24 hour window. key is the idempotency
// key, sent as for SendText.
func (c *Client) SendTemplate(ctx context.Context, to, name, language string, params []string, key string) (string, error) {
	if name == "" {
		return "", invalid("template name is empty")
	}
	if language == "" {
		return "", invalid("template language is empty")
	}
	t := &templateBody{Name: name, Language: templateLanguage{Code: language}}
	if len(params) > 0 {
		comp := templateComponent{Type: "body", Parameters: make([]templateParameter, len(params))}
		for i, p := range params {
			comp.Parameters[i] = templateParameter{Type: "text", Text: p}
		}
		t.Components = []templateComponent{comp}
	}
	return c.send(ctx, sendRequest{
		MessagingProduct:      "whatsapp",
		RecipientType:         "individual",
		To:                    strings.TrimSpace(to),
		Type:                  "template",
		Template:              t,
		BizOpaqueCallbackData: callbackData(key),
	})
}

// invalid is the permanent error of a send refused before it left.
func invalid(msg string) *Error {
	return &Error{Message: msg}
}

// callbackData fits an idempotency key into biz_opaque_callback_data.
func callbackData(key string) string {
	if len(key) <= maxCallbackData {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// endpoint is the messages URL of the client's phone number.
func (c *Client) endpoint() string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(c.PhoneNumberID) + "/messages"
}

func (c *Client) send(ctx context.Context, req sendRequest) (string, error) {
	if req.To == "" {
		return "", invalid("recipient is empty")
	}
	if c.PhoneNumberID == "" {
		return "", invalid("client has no phone number id")
	}
	if c.Token == "" {
		return "", invalid("client has no access token")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", &Error{Message: "encode request", err: err}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(), bytes.NewReader(body))
	if err != nil {
		return "", &Error{Message: "build request", err: err}
	}
	hreq.Header.Set("Authorization", "Bearer "+c.Token)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")

	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		// Network failures, timeouts and cancellation: the message may
		// or may not have left, and trying again may succeed. The cause
		// stays reachable with errors.Is (context.Canceled, ...). The
		// *url.Error is unwrapped because it repeats the URL.
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			cause = ctxErr
		}
		return "", &Error{retryable: true, err: cause}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", errorFromResponse(resp.StatusCode, resp.Header, data)
	}
	if err != nil {
		// Meta accepted the message; only its id was lost.
		return "", nil
	}
	// Meta accepted the message. A body without an id (which Meta does
	// not send) still means accepted: the id is then empty, and sending
	// again would deliver the message twice.
	var r sendResponse
	if json.Unmarshal(data, &r) == nil && len(r.Messages) > 0 {
		return r.Messages[0].ID, nil
	}
	return "", nil
}
