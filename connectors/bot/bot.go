// Package bot is triage's connector to the bot that answers customers
// before a human does (spec sections 6 and 10).
//
// The ask_bot action hands a Question to a Bot; the Answer comes back into
// the engine as a bot.answered event whose text, confidence, topic and
// resolved fields are the Answer's. Two bots are built in:
//
//   - HTTPBot posts the question as JSON to a bot of your own
//     (the `bot: url:` setting of the daemon's configuration);
//   - FAQ answers from a YAML file of questions and answers
//     (the `bot: faq:` setting), for demos and tests.
//
// # Failures
//
// On any failure, whether a timeout, a network error, an HTTP error status
// or an answer that breaks the contract, the caller treats the bot as not
// confident: after the retries it chooses to make (see Retryable), it
// emits the bot.answered event carrying NotConfident(err), whose confidence
// is 0, so that the rules escalate to a human instead of relaying nothing,
// or worse, something the bot did not say. A bot that cannot be reached
// never leaves a customer unanswered, and never gets to sound sure.
package bot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/triage-dev/triage/schemas"
)

// Who wrote a Turn of the history.
const (
	FromCustomer = "customer"
	FromBot      = "bot"
	FromAgent    = "agent"
)

// TopicBotError is the topic of NotConfident answers, so that rules and
// reports can tell a bot that failed from a bot that was unsure.
const TopicBotError = "bot_error"

// Question is what the bot is asked: the customer's latest message with
// the conversation it belongs to. Its JSON form is the request body HTTPBot
// sends: {"conversation", "contact", "text", "history"}.
type Question struct {
	// Conversation is the conversation id.
	Conversation string `json:"conversation"`
	// Contact is the customer, as far as triage knows them.
	Contact schemas.Contact `json:"contact"`
	// Text is the message to answer.
	Text string `json:"text"`
	// History holds the earlier messages of the conversation, oldest
	// first, not including Text.
	History []Turn `json:"history"`
}

// Turn is one earlier message of a conversation.
type Turn struct {
	// From is FromCustomer, FromBot or FromAgent.
	From string `json:"from"`
	// Text is the message text.
	Text string `json:"text"`
	// At is when the message was written; a zero At is left out of the
	// JSON form.
	At time.Time `json:"at,omitzero"`
}

// Answer is the bot's reply; it becomes the text, confidence, topic and
// resolved fields of a bot.answered event. Its JSON form is the response
// body HTTPBot expects: {"text", "confidence", "topic", "resolved"}.
type Answer struct {
	// Text is the answer to send to the customer, if the rules let it go.
	Text string `json:"text"`
	// Confidence, from 0 to 1, is how sure the bot is that Text answers
	// the question.
	Confidence float64 `json:"confidence"`
	// Topic is the bot's classification of the question; it may be empty.
	Topic string `json:"topic"`
	// Resolved tells that the bot believes the question is answered.
	Resolved bool `json:"resolved"`
}

// Validate reports whether a is an answer a bot may give: a non-blank
// text and a confidence from 0 to 1.
func (a Answer) Validate() error {
	if math.IsNaN(a.Confidence) || a.Confidence < 0 || a.Confidence > 1 {
		return fmt.Errorf("confidence %v is outside 0..1", a.Confidence)
	}
	if strings.TrimSpace(a.Text) == "" {
		return errors.New("text is empty")
	}
	return nil
}

// Bot answers questions. HTTPBot and FAQ are Bots; the daemon holds one.
//
// Ask returns an Answer that passes Validate, or an error. Callers that get
// an error use NotConfident(err) as the answer once they are done retrying.
type Bot interface {
	Ask(ctx context.Context, q Question) (Answer, error)
}

// NotConfident returns the answer that stands for a failed bot: no text,
// confidence 0, topic TopicBotError and not resolved. Any confidence
// threshold in the rules is then missed and the conversation escalates, as
// the spec asks of timeouts and errors. The error is not carried into the
// answer (it is for the log); err may be nil.
func NotConfident(err error) Answer {
	_ = err
	return Answer{Text: "", Confidence: 0, Topic: TopicBotError, Resolved: false}
}

// Retryable reports whether err, returned by a Bot, is worth another try:
// timeouts, network errors and 5xx responses are; 4xx responses and
// answers that break the contract are not, since asking again gets the
// same. Errors that do not say (they have no Retryable method) are not.
func Retryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// Config is the bot section of the daemon's configuration: exactly one of
// URL and FAQ.
type Config struct {
	// URL is the address HTTPBot posts questions to.
	URL string `yaml:"url"`
	// FAQ is the path of a FAQ file for the built-in FAQ bot.
	FAQ string `yaml:"faq"`
	// Timeout bounds each request to URL; zero means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
}

// New returns the Bot that cfg describes: an HTTPBot for a URL, a FAQ
// loaded from its file for a FAQ path. It returns nil and no error when
// cfg is empty, meaning no bot is configured.
func New(cfg Config) (Bot, error) {
	switch {
	case cfg.URL != "" && cfg.FAQ != "":
		return nil, errors.New("bot: set url or faq, not both")
	case cfg.URL != "":
		b := &HTTPBot{URL: cfg.URL, Timeout: cfg.Timeout}
		if err := b.check(); err != nil {
			return nil, err
		}
		return b, nil
	case cfg.FAQ != "":
		if cfg.Timeout != 0 {
			return nil, errors.New("bot: timeout applies to url, not to faq")
		}
		f, err := LoadFAQ(cfg.FAQ)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nil, nil
}
