package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a request of an HTTPBot whose Timeout is zero. A
// customer is waiting on the other end, so it is short.
const DefaultTimeout = 10 * time.Second

// maxAnswerBytes bounds the response body HTTPBot reads.
const maxAnswerBytes = 1 << 20

// ErrMalformedAnswer is wrapped by the errors of answers that break the
// contract: a body that is not the JSON object expected, a missing text or
// confidence, or a confidence outside 0..1.
var ErrMalformedAnswer = errors.New("malformed answer")

// HTTPBot asks a bot of your own over HTTP.
//
// Each Ask is one POST to URL with the Question as its JSON body,
//
//	{"conversation": "c1", "contact": {"id": "…", "name": "…", "language": "…", "phone": "…"},
//	 "text": "…", "history": [{"from": "customer", "text": "…", "at": "2025-01-01T10:00:00Z"}]}
//
// (history is [] when there is none), answered by a 2xx status and
//
//	{"text": "…", "confidence": 0.82, "topic": "delivery", "resolved": false}
//
// where text must not be blank, confidence must be given and lie in 0..1,
// topic may be empty or missing and resolved defaults to false. Unknown
// fields in the answer are ignored, so a bot may send more.
//
// Every failure is returned as an *Error saying whether it is Retryable;
// see the package documentation for what a caller does with it. HTTPBot
// does not retry by itself: the caller owns the retry policy. It is safe
// for concurrent use.
type HTTPBot struct {
	// URL is where questions are posted.
	URL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds each Ask, from sending the question to reading the
	// whole answer; zero means DefaultTimeout. A deadline of the context
	// given to Ask applies as well.
	Timeout time.Duration
}

// Error is a failed Ask of an HTTPBot.
type Error struct {
	// StatusCode is the HTTP status of the response, or 0 when the bot
	// sent none (a timeout or a network error) or the request could not
	// be made.
	StatusCode int
	// Err is what went wrong.
	Err error

	retryable  bool
	retryAfter time.Duration
}

// Error returns the message of e.Err.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether asking again may succeed: true for timeouts,
// network errors, 5xx statuses and the 4xx statuses that mean "later"
// (408 Request Timeout, 425 Too Early, 429 Too Many Requests); false for
// other 4xx statuses, other statuses outside 2xx, malformed answers and an
// unusable URL. A cancelled context counts as retryable too: the bot was
// never heard, so asking again later is the caller's call.
func (e *Error) Retryable() bool { return e.retryable }

// RetryAfter returns how long the bot asked to wait before the next try
// (the Retry-After header of a retryable status, in seconds or as an HTTP
// date, at most an hour), or 0 when it did not say.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// maxRetryAfter caps a Retry-After, so that a wild value cannot hold a
// conversation's question back for days.
const maxRetryAfter = time.Hour

// retryAfter reads a Retry-After header; 0 when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n >= int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// check reports a URL HTTPBot cannot use.
func (b *HTTPBot) check() error {
	u, err := url.Parse(b.URL)
	if err != nil {
		return fmt.Errorf("bot: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("bot: url %q: want an absolute http or https URL", redact(b.URL))
	}
	if b.Timeout < 0 {
		return fmt.Errorf("bot: timeout %v is negative", b.Timeout)
	}
	return nil
}

// Ask posts q to the bot and returns its answer, or an *Error.
func (b *HTTPBot) Ask(ctx context.Context, q Question) (Answer, error) {
	where := redact(b.URL)
	fail := func(status int, retryable bool, format string, args ...any) (Answer, error) {
		return Answer{}, &Error{
			StatusCode: status,
			Err:        fmt.Errorf("ask bot at %s: "+format, append([]any{where}, args...)...),
			retryable:  retryable,
		}
	}
	if err := b.check(); err != nil {
		return Answer{}, &Error{Err: err}
	}
	if q.History == nil {
		q.History = []Turn{}
	}
	body, err := json.Marshal(q)
	if err != nil {
		return fail(0, false, "encode question: %w", err)
	}
	timeout := b.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL, bytes.NewReader(body))
	if err != nil {
		return fail(0, false, "%w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	client := b.HTTP
	if client == nil {
		client = http.DefaultClient
	}

	resp, err := client.Do(req)
	if err != nil {
		return fail(0, true, "%w", transportError(ctx, timeout, err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return fail(resp.StatusCode, true, "read answer: %w", transportError(ctx, timeout, err))
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout ||
			resp.StatusCode == http.StatusTooEarly || resp.StatusCode == http.StatusTooManyRequests
		a, err := fail(resp.StatusCode, retry, "status %d%s", resp.StatusCode, snippet(data))
		if retry {
			err.(*Error).retryAfter = retryAfter(resp.Header, time.Now())
		}
		return a, err
	}
	if len(data) > maxAnswerBytes {
		return fail(resp.StatusCode, false, "%w: larger than %d bytes", ErrMalformedAnswer, maxAnswerBytes)
	}
	a, err := decodeAnswer(data)
	if err != nil {
		return fail(resp.StatusCode, false, "%w: %w", ErrMalformedAnswer, err)
	}
	return a, nil
}

// errTimedOut is the cause of the deadline HTTPBot sets, which tells its own
// timeout from a deadline of the caller's context.
var errTimedOut = errors.New("bot timed out")

// transportError says "no answer within …" when the request ran into the
// HTTPBot's own timeout, keeping context.DeadlineExceeded in the chain. It
// drops the *url.Error of the HTTP client, whose message repeats the URL
// with its query, where API keys tend to be.
func transportError(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(context.Cause(ctx), errTimedOut) {
		return fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// decodeAnswer parses and validates a response body.
func decodeAnswer(data []byte) (Answer, error) {
	var raw struct {
		Text       *string  `json:"text"`
		Confidence *float64 `json:"confidence"`
		Topic      *string  `json:"topic"`
		Resolved   *bool    `json:"resolved"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return Answer{}, fmt.Errorf("not a JSON answer object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Answer{}, errors.New("trailing data after the JSON answer")
	}
	// A JSON null decodes into no pointer at all, like a missing field.
	switch {
	case raw.Text == nil:
		return Answer{}, errors.New("missing text")
	case raw.Confidence == nil:
		return Answer{}, errors.New("missing confidence")
	}
	a := Answer{Text: *raw.Text, Confidence: *raw.Confidence}
	if raw.Topic != nil {
		a.Topic = *raw.Topic
	}
	if raw.Resolved != nil {
		a.Resolved = *raw.Resolved
	}
	if err := a.Validate(); err != nil {
		return Answer{}, err
	}
	return a, nil
}

// snippet quotes the start of an error response body for the message.
func snippet(data []byte) string {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return ""
	}
	const max = 200
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return fmt.Sprintf(": %q", s)
}

// redact hides a password in u, so that errors can be logged.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	p.RawQuery = redactQuery(p.RawQuery)
	return p.Redacted()
}

// redactQuery hides query values, which often carry API keys.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, kv := range parts {
		if k, _, ok := strings.Cut(kv, "="); ok {
			parts[i] = k + "=xxxxx"
		}
	}
	return strings.Join(parts, "&")
}
