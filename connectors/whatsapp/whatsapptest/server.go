// Package whatsapptest is a fake WhatsApp Cloud API for tests: an
// httptest server that speaks POST /{version}/{phone-number-id}/messages,
// records every request and answers with Meta's success body or, when
// scripted, with Meta's error JSON; and helpers that build signed webhook
// requests from the real payloads in fixtures/.
//
// It imports only the standard library, so tests of package whatsapp
// itself may use it, and its signing is an independent check of
// whatsapp.VerifySignature. It listens on loopback only.
package whatsapptest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the Graph API version in the fake's BaseURL. The server
// accepts any version segment.
const Version = "v21.0"

// Meta error codes the fake knows by heart (see MetaError).
const (
	CodeInvalidParameter = 100
	CodeAuth             = 190
	CodeServiceError     = 131000
	CodeRateLimit        = 130429
	CodeUndeliverable    = 131026
	CodeReEngagement     = 131047
	CodeMarketingOptOut  = 131050
	CodePairRateLimit    = 131056
)

// Server is a fake Cloud API. Create it with NewServer and Close it when
// done. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu    sync.Mutex
	token string
	reqs  []Request
	next  []Reply
	byTo  map[string]Reply
	count int
}

// Request is one request the fake received.
type Request struct {
	// Time is when the request arrived.
	Time time.Time
	// Method and Path are the request's; Version and PhoneNumberID are
	// the segments of a /{version}/{phone}/messages path.
	Method, Path           string
	Version, PhoneNumberID string
	// Header holds the request headers.
	Header http.Header
	// Raw is the body as received; Body is it decoded as JSON (nil when
	// it was not JSON), for shape assertions; Message is the typed view.
	Raw     []byte
	Body    map[string]any
	Message Message
	// Status is the HTTP status the fake answered with, and MessageID
	// the message id it returned on success.
	Status    int
	MessageID string
}

// Message is the typed view of a send request body.
type Message struct {
	MessagingProduct      string `json:"messaging_product"`
	RecipientType         string `json:"recipient_type"`
	To                    string `json:"to"`
	Type                  string `json:"type"`
	BizOpaqueCallbackData string `json:"biz_opaque_callback_data"`
	Text                  *struct {
		PreviewURL bool   `json:"preview_url"`
		Body       string `json:"body"`
	} `json:"text"`
	Template *struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
		Components []struct {
			Type       string `json:"type"`
			Parameters []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"parameters"`
		} `json:"components"`
	} `json:"template"`
}

// Reply is a scripted answer.
type Reply struct {
	// Status is the HTTP status; 400 when zero.
	Status int
	// Code, Subcode, Type, Message and Details fill Meta's error JSON
	// (error.code, error_subcode, type, message, error_data.details).
	Code    int
	Subcode int
	Type    string
	Message string
	Details string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body, when set, is sent as is instead of Meta's error JSON: for
	// garbled or non-JSON answers.
	Body []byte
	// Delay holds the answer back this long, or until the client gives
	// up, whichever comes first.
	Delay time.Duration
}

// WithRetryAfter returns r with a Retry-After header of v.
func (r Reply) WithRetryAfter(v string) Reply {
	r.RetryAfter = v
	return r
}

// MetaError is the answer the Cloud API gives for code, with Meta's
// status, type, message and details. Codes it does not know get status
// 400 and a generic message.
func MetaError(code int) Reply {
	r := Reply{Status: http.StatusBadRequest, Code: code, Type: "OAuthException"}
	switch code {
	case CodeInvalidParameter:
		r.Message = "(#100) Invalid parameter"
		r.Details = "Invalid parameter"
	case CodeAuth:
		r.Status = http.StatusUnauthorized
		r.Message = "Error validating access token: Session has expired."
		r.Subcode = 463
	case CodeServiceError:
		r.Status = http.StatusInternalServerError
		r.Message = "(#131000) Something went wrong"
		r.Details = "Message failed to send due to an unknown error."
	case CodeRateLimit:
		r.Message = "(#130429) Rate limit hit"
		r.Details = "Cloud API message throughput has been reached."
	case CodeUndeliverable:
		r.Message = "(#131026) Message Undeliverable"
		r.Details = "Message failed to send because the recipient's phone number is not a WhatsApp phone number, or the recipient cannot receive it."
	case CodeReEngagement:
		r.Message = "(#131047) Re-engagement message"
		r.Details = "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
	case CodeMarketingOptOut:
		r.Message = "(#131050) User has stopped marketing messages"
		r.Details = "Unable to deliver the marketing message. This user has chosen to stop receiving marketing messages from your business."
	case CodePairRateLimit:
		r.Message = "(#131056) (Business Account, Consumer Account) pair rate limit hit"
		r.Details = "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."
	default:
		r.Message = fmt.Sprintf("(#%d) Error", code)
		r.Details = "An error occurred."
	}
	return r
}

// NewServer starts a fake Cloud API on loopback. It accepts any bearer
// token until RequireToken is called.
func NewServer() *Server {
	s := &Server{byTo: map[string]Reply{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// BaseURL is the value for whatsapp.Client.BaseURL: the server's URL and
// a version segment.
func (s *Server) BaseURL() string {
	return s.URL + "/" + Version
}

// RequireToken makes the fake answer 401 with code 190 to requests whose
// bearer token is not token.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// FailNext scripts the next n valid requests to be answered with r.
// Calls queue up: FailNext(1, a) then FailNext(2, b) answers a, b, b.
func (s *Server) FailNext(n int, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, r)
	}
}

// FailRecipient scripts every valid request to the recipient to (as the
// request's "to" spells it) to be answered with r, once the FailNext
// queue is empty, until ClearRecipient.
func (s *Server) FailRecipient(to string, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byTo[to] = r
}

// ClearRecipient undoes FailRecipient.
func (s *Server) ClearRecipient(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byTo, to)
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Reset forgets the recorded requests and every script.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
	s.next = nil
	s.byTo = map[string]Reply{}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	req := Request{
		Time:   time.Now(),
		Method: r.Method,
		Path:   r.URL.Path,
		Header: r.Header.Clone(),
		Raw:    raw,
	}
	if json.Unmarshal(raw, &req.Body) != nil {
		req.Body = nil
	}
	_ = json.Unmarshal(raw, &req.Message)

	reply, ok := s.decide(r, &req)
	if ok && reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	s.mu.Lock()
	if ok {
		req.Status = statusOf(reply)
	} else {
		req.Status = http.StatusOK
		s.count++
		req.MessageID = messageID(req.PhoneNumberID, req.Message.To, s.count)
	}
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if ok {
		writeError(w, reply)
		return
	}
	resp := map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []map[string]string{{"input": req.Message.To, "wa_id": digits(req.Message.To)}},
	}
	msg := map[string]string{"id": req.MessageID}
	if req.Message.Type == "template" {
		msg["message_status"] = "accepted"
	}
	resp["messages"] = []map[string]string{msg}
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

// decide checks the request as the Cloud API would and picks the scripted
// answer, if any. ok false means success.
func (s *Server) decide(r *http.Request, req *Request) (Reply, bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "v") || parts[1] == "" || parts[2] != "messages" {
		return Reply{Status: http.StatusBadRequest, Code: 2500, Type: "OAuthException",
			Message: "Unknown path components: " + r.URL.Path}, true
	}
	req.Version, req.PhoneNumberID = parts[0], parts[1]
	if r.Method != http.MethodPost {
		return Reply{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Type: "GraphMethodException",
			Message: "Unsupported " + strings.ToLower(r.Method) + " request."}, true
	}

	s.mu.Lock()
	token := s.token
	s.mu.Unlock()
	got, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !hasBearer || got == "" || (token != "" && got != token) {
		return Reply{Status: http.StatusUnauthorized, Code: CodeAuth, Type: "OAuthException",
			Message: "Invalid OAuth access token - Cannot parse access token"}, true
	}
	if problem := validate(req); problem != "" {
		rep := MetaError(CodeInvalidParameter)
		rep.Message = "(#100) " + problem
		rep.Details = problem
		return rep, true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.next) > 0 {
		rep := s.next[0]
		s.next = s.next[1:]
		return rep, true
	}
	if rep, found := s.byTo[req.Message.To]; found {
		return rep, true
	}
	return Reply{}, false
}

// validate is the part of Meta's request validation that catches client
// bugs: the problem, or "".
func validate(req *Request) string {
	m := req.Message
	switch {
	case req.Body == nil:
		return "The request body is not JSON."
	case m.MessagingProduct != "whatsapp":
		return "The parameter messaging_product is required."
	case m.To == "":
		return "The parameter to is required."
	}
	switch m.Type {
	case "text":
		if m.Text == nil || m.Text.Body == "" {
			return "The parameter text['body'] is required."
		}
	case "template":
		if m.Template == nil || m.Template.Name == "" {
			return "The parameter template['name'] is required."
		}
		if m.Template.Language.Code == "" {
			return "The parameter template['language']['code'] is required."
		}
	case "":
		return "The parameter type is required."
	}
	return ""
}

func statusOf(r Reply) int {
	if r.Status == 0 {
		return http.StatusBadRequest
	}
	return r.Status
}

func writeError(w http.ResponseWriter, r Reply) {
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	w.WriteHeader(statusOf(r))
	if r.Body != nil {
		_, _ = w.Write(r.Body)
		return
	}
	e := map[string]any{
		"message":    r.Message,
		"type":       r.Type,
		"code":       r.Code,
		"fbtrace_id": "AbCdEfGhIjKlMnOpQrStUvW",
	}
	if r.Subcode != 0 {
		e["error_subcode"] = r.Subcode
	}
	if r.Details != "" {
		e["error_data"] = map[string]string{"messaging_product": "whatsapp", "details": r.Details}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// messageID makes a wamid-looking id, unique per server.
func messageID(phone, to string, n int) string {
	return "wamid." + base64.StdEncoding.EncodeToString([]byte("fake:"+phone+":"+digits(to)+":"+strconv.Itoa(n)))
}

func digits(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
