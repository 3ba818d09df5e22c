// Package slack posts triage's notify messages to Slack, either through
// incoming webhooks (one URL per channel) or through the Web API's
// chat.postMessage with a bot token.
//
// A Client paces posts per channel so that Slack's documented limit of
// about one message per second per channel is kept, and classifies every
// failure as retryable or permanent (see Error) so the dispatcher knows
// whether to try again and when.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultAPIURL is the Web API base URL used when Config.APIURL is empty.
const DefaultAPIURL = "https://slack.com/api"

// DefaultMinInterval is the least time between two posts to one channel
// when Config.MinInterval is zero: Slack allows about one message per
// second per channel.
const DefaultMinInterval = time.Second

// DefaultTimeout bounds one HTTP exchange with Slack when Config.HTTP is nil.
const DefaultTimeout = 10 * time.Second

// rememberedKeys is how many delivered idempotency keys a Client keeps per
// channel to skip a post it has already delivered.
const rememberedKeys = 1024

// maxBody is how much of Slack's answer is read; real answers are tiny.
const maxBody = 64 << 10

// Clock is the time source a Client paces with. Tests supply their own to
// check intervals without sleeping; the zero Config uses the real clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Config configures a Client. At least one of Webhooks and BotToken must be
// set; a channel with a webhook is posted through it, any other channel
// through chat.postMessage when BotToken is set.
type Config struct {
	// Webhooks maps a channel ("#support-urgent") to its incoming-webhook
	// URL. The URLs are secrets: they never appear in errors.
	Webhooks map[string]string
	// BotToken is the bot token ("xoxb-...") sent as a bearer token to
	// chat.postMessage.
	BotToken string
	// APIURL is the Web API base URL; chat.postMessage is posted to
	// APIURL + "/chat.postMessage". Empty means DefaultAPIURL.
	APIURL string
	// HTTP is the client used for every request. Nil means a client with
	// DefaultTimeout.
	HTTP *http.Client
	// MinInterval is the least time between Slack's answer to one post
	// to a channel and the start of the next post to it. Zero means
	// DefaultMinInterval; negative is an error.
	MinInterval time.Duration
	// Clock is the time source for pacing and Retry-After dates. Nil
	// means the real clock.
	Clock Clock
}

// Client posts messages to Slack channels. It is safe for concurrent use.
type Client struct {
	webhooks    map[string]string // normalized channel -> URL
	token       string
	postURL     string // APIURL + "/chat.postMessage"
	http        *http.Client
	minInterval time.Duration
	clock       Clock

	mu       sync.Mutex
	channels map[string]*channelState
}

// New validates cfg and returns a Client. It reports every problem it
// finds, joined, and never includes a webhook URL in an error.
func New(cfg Config) (*Client, error) {
	c := &Client{
		webhooks:    make(map[string]string, len(cfg.Webhooks)),
		token:       cfg.BotToken,
		http:        cfg.HTTP,
		minInterval: cfg.MinInterval,
		clock:       cfg.Clock,
		channels:    make(map[string]*channelState),
	}
	var errs []error
	if len(cfg.Webhooks) == 0 && cfg.BotToken == "" {
		errs = append(errs, errors.New("slack: neither webhooks nor bot_token is set"))
	}
	seen := make(map[string]string, len(cfg.Webhooks))
	for channel, raw := range cfg.Webhooks {
		key := normalize(channel)
		if key == "" {
			errs = append(errs, errors.New("slack: webhook with an empty channel name"))
			continue
		}
		if other, dup := seen[key]; dup {
			a, b := min(other, channel), max(other, channel)
			errs = append(errs, fmt.Errorf("slack: channels %q and %q name the same channel", a, b))
			continue
		}
		seen[key] = channel
		if err := checkURL(raw); err != nil {
			errs = append(errs, fmt.Errorf("slack: webhook for channel %q: %w", channel, err))
			continue
		}
		c.webhooks[key] = raw
	}
	if strings.ContainsAny(cfg.BotToken, " \t\r\n") {
		errs = append(errs, errors.New("slack: bot_token contains white space"))
	}
	if cfg.BotToken != "" {
		api := cfg.APIURL
		if api == "" {
			api = DefaultAPIURL
		}
		if err := checkURL(api); err != nil {
			errs = append(errs, fmt.Errorf("slack: api_url %q: %w", api, err))
		}
		c.postURL = strings.TrimSuffix(api, "/") + "/chat.postMessage"
	} else if cfg.APIURL != "" {
		errs = append(errs, errors.New("slack: api_url is set but bot_token is not"))
	}
	switch {
	case cfg.MinInterval < 0:
		errs = append(errs, fmt.Errorf("slack: negative min interval %v", cfg.MinInterval))
	case cfg.MinInterval == 0:
		c.minInterval = DefaultMinInterval
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultTimeout}
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	return c, nil
}

// checkURL says why raw is not an absolute http(s) URL, without repeating
// raw: a webhook URL is a secret.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("empty URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("not an http or https URL")
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	return nil
}

// normalize returns the key a channel is paced and looked up by: "#ops"
// and "ops" are one channel.
func normalize(channel string) string {
	return strings.TrimPrefix(strings.TrimSpace(channel), "#")
}

// Post sends text to channel: through the channel's incoming webhook if it
// has one, through chat.postMessage otherwise. It first waits, respecting
// ctx, until MinInterval has passed since the last post to that channel
// was answered (longer if Slack asked for it with Retry-After); posts to
// one channel go out one at a time, and posts to other channels do not
// wait for them.
//
// A non-empty idempotencyKey that this Client already delivered to the
// channel is not sent again and Post returns nil. Slack itself knows no
// idempotency key, so a post whose answer was lost may still arrive twice.
//
// A failure is an *Error, which says whether trying again may help, or the
// context's error when ctx ends while waiting for the channel's turn.
func (c *Client) Post(ctx context.Context, channel, text, idempotencyKey string) error {
	key := normalize(channel)
	if key == "" {
		return &Error{Channel: channel, msg: "empty channel name"}
	}
	webhook, ok := c.webhooks[key]
	if !ok && c.token == "" {
		return &Error{Channel: channel, msg: "no webhook for this channel and no bot token"}
	}
	if text == "" {
		return &Error{Channel: channel, Code: "no_text"}
	}

	st := c.channel(key)
	if err := st.lock(ctx); err != nil {
		return fmt.Errorf("slack: channel %q: waiting for its turn: %w", channel, err)
	}
	defer st.unlock()
	if idempotencyKey != "" && st.delivered(idempotencyKey) {
		return nil
	}
	if err := c.waitUntil(ctx, st.next); err != nil {
		return fmt.Errorf("slack: channel %q: waiting for the rate limit: %w", channel, err)
	}

	var err error
	if ok {
		err = c.postWebhook(ctx, channel, webhook, text)
	} else {
		err = c.postMessage(ctx, channel, text)
	}
	// Counting from the answer rather than from the start keeps the
	// posts at least MinInterval apart when they reach Slack too,
	// however long each took on the way.
	done := c.clock.Now()
	st.next = done.Add(c.minInterval)
	if e := (*Error)(nil); errors.As(err, &e) && e.retryAfter > c.minInterval {
		st.next = done.Add(e.retryAfter)
	}
	if err == nil && idempotencyKey != "" {
		st.remember(idempotencyKey)
	}
	return err
}

// waitUntil blocks until the clock reaches t or ctx ends.
func (c *Client) waitUntil(ctx context.Context, t time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := t.Sub(c.clock.Now())
		if d <= 0 {
			return nil
		}
		select {
		case <-c.clock.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// postWebhook posts {"text": text} to an incoming webhook, which answers
// 200 "ok" or an error code as a plain-text body.
func (c *Client) postWebhook(ctx context.Context, channel, webhook, text string) error {
	body, err := encode(struct {
		Text string `json:"text"`
	}{text})
	if err != nil {
		return &Error{Channel: channel, via: viaWebhook, msg: "encoding the message", err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		// Not wrapped: the cause would repeat the secret URL.
		return &Error{Channel: channel, via: viaWebhook, msg: "building the request"}
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, channel, viaWebhook)
}

// postMessage posts {"channel", "text"} to chat.postMessage, which answers
// 200 with {"ok": true, ...} or {"ok": false, "error": code}.
func (c *Client) postMessage(ctx context.Context, channel, text string) error {
	body, err := encode(struct {
		Channel string `json:"channel"`
		Text    string `json:"text"`
	}{channel, text})
	if err != nil {
		return &Error{Channel: channel, via: viaAPI, msg: "encoding the message", err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.postURL, bytes.NewReader(body))
	if err != nil {
		return &Error{Channel: channel, via: viaAPI, msg: "building the request", err: err}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.do(req, channel, viaAPI)
}

// do sends req and classifies the answer.
func (c *Client) do(req *http.Request, channel, via string) error {
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the URL, and a webhook URL is a secret:
		// keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &Error{Channel: channel, via: via, retryable: true, err: err}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &Error{Channel: channel, via: via, Status: resp.StatusCode, retryable: true,
			msg: "reading the answer", err: err}
	}
	return classify(channel, via, resp.StatusCode, resp.Header, body, c.clock.Now())
}

// encode marshals v as JSON without escaping <, > and &, which Slack
// reads as its own markup.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// channelState is one channel's pacing and memory of delivered keys. Its
// one-slot semaphore serializes posts to the channel.
type channelState struct {
	sem  chan struct{}
	next time.Time // no post may begin before this; guarded by sem

	keys map[string]struct{} // delivered idempotency keys; guarded by sem
	ring []string            // keys in delivery order, oldest evicted first
	head int
}

// channel returns the state for the normalized channel key, creating it.
func (c *Client) channel(key string) *channelState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.channels[key]
	if !ok {
		st = &channelState{sem: make(chan struct{}, 1), keys: make(map[string]struct{})}
		c.channels[key] = st
	}
	return st
}

func (s *channelState) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *channelState) unlock() { <-s.sem }

func (s *channelState) delivered(key string) bool {
	_, ok := s.keys[key]
	return ok
}

func (s *channelState) remember(key string) {
	if len(s.ring) < rememberedKeys {
		s.ring = append(s.ring, key)
	} else {
		delete(s.keys, s.ring[s.head])
		s.ring[s.head] = key
		s.head = (s.head + 1) % rememberedKeys
	}
	s.keys[key] = struct{}{}
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
