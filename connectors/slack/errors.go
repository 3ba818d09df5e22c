package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// How a message went out, as named in errors.
const (
	viaWebhook = "webhook"
	viaAPI     = "chat.postMessage"
)

// transientCodes are the Web API error codes that Slack documents as
// temporary: trying again later may succeed.
var transientCodes = map[string]bool{
	"ratelimited":         true,
	"rate_limited":        true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
	"team_added_to_org":   true,
}

// Error is a failed post. Retryable says whether trying the same post again
// may succeed; RetryAfter, when positive, is how long Slack asked to wait
// first.
type Error struct {
	// Channel is the channel the post was for, as the caller named it.
	Channel string
	// Status is the HTTP status of Slack's answer; 0 when there was none
	// (network failure, or a post refused before sending).
	Status int
	// Code is Slack's error code ("channel_not_found", "invalid_auth"),
	// from a webhook's plain-text body or the Web API's "error" field;
	// empty when Slack gave none.
	Code string

	retryable  bool
	retryAfter time.Duration
	via        string // viaWebhook, viaAPI, or "" when nothing was sent
	msg        string // what went wrong when Code and Status do not say
	err        error  // the cause, for network and read failures
}

// Error returns a lowercase, single-line description naming the channel,
// the transport and Slack's status and code. It never contains a webhook
// URL or a token.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "slack: channel %q: ", e.Channel)
	if e.via != "" {
		b.WriteString(e.via)
		b.WriteString(": ")
	}
	var parts []string
	if e.Status != 0 && e.Status != http.StatusOK {
		parts = append(parts, strconv.Itoa(e.Status))
	}
	switch {
	case e.Code != "":
		parts = append(parts, e.Code)
	case e.Status != 0 && e.msg == "" && e.err == nil:
		parts = append(parts, strings.ToLower(http.StatusText(e.Status)))
	}
	if e.msg != "" {
		parts = append(parts, e.msg)
	}
	b.WriteString(strings.Join(parts, " "))
	if e.err != nil {
		if len(parts) > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.err.Error())
	}
	if e.retryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.retryAfter)
	}
	return b.String()
}

// Unwrap returns the underlying cause of a network or read failure, so
// errors.Is(err, context.DeadlineExceeded) works; nil otherwise.
func (e *Error) Unwrap() error { return e.err }

// Retryable reports whether the same post may succeed later: true for
// network failures, 408, 429, 5xx and the Web API's temporary codes
// (ratelimited, internal_error, service_unavailable, ...); false for
// everything else, such as a missing channel or a bad token.
func (e *Error) Retryable() bool { return e.retryable }

// RetryAfter returns how long Slack asked to wait before the next try
// (its Retry-After header), or 0 when it did not say.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// IsRetryable reports whether err is an *Error that is retryable. A
// context error from waiting for a channel's turn is not: the caller gave
// up, and decides for itself.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// classify turns Slack's answer into nil or an *Error. A webhook answers
// 200 "ok"; chat.postMessage answers 200 {"ok": true}; anything else is a
// failure, retryable or not.
func classify(channel, via string, status int, h http.Header, body []byte, now time.Time) error {
	e := &Error{Channel: channel, via: via, Status: status}
	text := strings.TrimSpace(string(body))
	if status/100 == 2 {
		if via == viaWebhook {
			if text == "ok" {
				return nil
			}
			// 200 with something else: not an answer Slack gives, so
			// not one that trying again would change.
			e.Code = codeOf(text)
			if e.Code == "" {
				e.msg = "unexpected answer"
			}
			return e
		}
		var r struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.OK == nil {
			e.msg = "answer is not a Slack API response"
			return e
		}
		if *r.OK {
			return nil
		}
		e.Code = r.Error
		if e.Code == "" {
			e.msg = "ok is false with no error code"
		}
		e.retryable = transientCodes[e.Code]
		e.retryAfter = retryAfter(h, now)
		return e
	}

	e.Code = errorCode(text)
	switch {
	case status == http.StatusTooManyRequests:
		e.retryable = true
		e.retryAfter = retryAfter(h, now)
	case status == http.StatusRequestTimeout, status >= 500:
		e.retryable = true
		e.retryAfter = retryAfter(h, now)
	}
	return e
}

// errorCode finds Slack's error code in a non-2xx body: a JSON
// {"error": code} or a plain-text code.
func errorCode(text string) string {
	if strings.HasPrefix(text, "{") {
		var r struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(text), &r) == nil {
			return codeOf(r.Error)
		}
		return ""
	}
	return codeOf(text)
}

// codeOf returns s if it looks like a Slack error code (lowercase letters,
// digits and underscores, short), and "" otherwise, so that an HTML error
// page never ends up in an error message.
func codeOf(s string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return ""
		}
	}
	return s
}

// maxRetryAfter caps a Retry-After so that a wild value cannot stall a
// channel for days.
const maxRetryAfter = time.Hour

// retryAfter reads a Retry-After header in seconds (what Slack sends) or
// as an HTTP date, capped at maxRetryAfter; 0 when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n >= int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
