package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a failed send. Retryable says whether sending the same message
// again later may succeed; RetryAfter, when positive, is how long to wait
// first. WindowClosed and OptedOut single out the two permanent failures
// the engine acts on. Every error a Client returns is an *Error.
type Error struct {
	// Status is the HTTP status of Meta's answer; 0 when there was none
	// (a network failure, or a send refused before it left).
	Status int
	// Code is Meta's error code (error.code), 0 when the answer had none.
	Code int
	// Subcode is Meta's error.error_subcode, 0 when absent.
	Subcode int
	// Title is Meta's short message (error.message, such as
	// "(#131047) Re-engagement message").
	Title string
	// Message is the longer explanation (error.error_data.details, or
	// error.error_user_msg), or what went wrong when Meta did not answer.
	Message string
	// TraceID is Meta's fbtrace_id, for Meta support.
	TraceID string
	// WindowClosed is set for error 131047: more than 24 hours passed
	// since the customer last wrote, so only a template may be sent.
	WindowClosed bool
	// OptedOut is set for error 131050: the customer stopped marketing
	// messages from the business.
	OptedOut bool

	retryable  bool
	retryAfter time.Duration
	err        error // the cause of a network or context failure
}

// Error returns a single-line description: Meta's status, code, title and
// details. It never contains the access token.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("whatsapp: send")
	if e.Status != 0 {
		fmt.Fprintf(&b, ": http %d", e.Status)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ": code %d", e.Code)
		if e.Subcode != 0 {
			fmt.Fprintf(&b, "/%d", e.Subcode)
		}
	}
	for _, s := range []string{e.Title, e.Message} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

// Unwrap returns the cause of a network or context failure, so that
// errors.Is(err, context.Canceled) works; nil for Meta's answers.
func (e *Error) Unwrap() error { return e.err }

// Retryable reports whether sending the same message again may succeed:
// rate limits, Meta's server errors, network failures and timeouts.
func (e *Error) Retryable() bool { return e.retryable }

// RetryAfter is how long to wait before retrying: Meta's Retry-After
// header when it sent one (capped at 24 hours), else a default for rate
// limits: 5 s for 130429, 6 s for 131056, a minute for the application
// limits 4 and 80007. 0 leaves the backoff to the caller. It is 0 for
// permanent errors.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// IsRetryable reports whether err is an *Error that is retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// metaError is the Graph API error body.
type metaError struct {
	Error *struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		ErrorUserMsg string `json:"error_user_msg"`
		ErrorData    struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// Default waits for rate-limit errors that come without Retry-After.
const (
	rateLimitWait     = 5 * time.Second  // 130429: throughput, a few seconds
	pairRateLimitWait = 6 * time.Second  // 131056: about one message per 6 s per pair
	appRateLimitWait  = 60 * time.Second // 4, 80007: app or account call limits

	// maxRetryAfter caps a Retry-After header, so a garbled one cannot
	// park a message for years.
	maxRetryAfter = 24 * time.Hour
)

// errorFromResponse builds the *Error for a non-2xx answer. A body that is
// not Meta's error JSON still yields an error classified by status code.
func errorFromResponse(status int, header http.Header, body []byte) *Error {
	e := &Error{Status: status}
	var m metaError
	if json.Unmarshal(body, &m) == nil && m.Error != nil {
		e.Code = m.Error.Code
		e.Subcode = m.Error.ErrorSubcode
		e.Title = m.Error.Message
		e.Message = m.Error.ErrorData.Details
		if e.Message == "" {
			e.Message = m.Error.ErrorUserMsg
		}
		e.TraceID = m.Error.FBTraceID
	} else {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	var wait time.Duration
	e.retryable, wait = classify(status, e.Code)
	switch e.Code {
	case CodeReEngagement:
		e.WindowClosed = true
	case CodeMarketingOptOut:
		e.OptedOut = true
	}
	if e.retryable {
		if d, ok := parseRetryAfter(header.Get("Retry-After"), time.Now()); ok {
			wait = d
		}
		e.retryAfter = wait
	}
	return e
}

// classify decides from Meta's code, then from the HTTP status, whether
// an answer is worth retrying, and the default wait when it is.
func classify(status, code int) (retryable bool, wait time.Duration) {
	switch code {
	case CodeRateLimit:
		return true, rateLimitWait
	case CodePairRateLimit:
		return true, pairRateLimitWait
	case 4, 80007: // application / business account rate limits
		return true, appRateLimitWait
	case 1, 2, 131000, 131016, 133004: // unknown, service, something went wrong, unavailable
		return true, 0
	case CodeReEngagement, CodeMarketingOptOut, CodeUndeliverable, CodeAuth:
		return false, 0
	}
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return false, 0
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return true, 0
	case status >= 500:
		return true, 0
	}
	return false, 0
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}
