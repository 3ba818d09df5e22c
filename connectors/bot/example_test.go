package bot_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/bot/bottest"
)

func ExampleFAQ() {
	faq, err := bot.ParseFAQ([]byte(`
fallback: Sorry, I don't know that one.
entries:
  - question: What are your opening hours?
    alternatives:
      - When are you open?
      - Are you open on Sunday?
    answer: Monday to Saturday, 9:00 to 18:00.
    topic: opening_hours
    resolves: true
  - question: How do I return an item?
    alternatives:
      - What is your returns policy?
      - Can I get a refund?
    answer: Within 30 days, from your account page.
    topic: refund
    resolves: true
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, text := range []string{
		"WHEN ARE YOU OPEN?!",         // an alternative, as written: 1
		"are you open on saturday",    // "saturday" is in no entry: lower
		"what is the meaning of life", // only "what is" in common: fallback
	} {
		a, _ := faq.Ask(context.Background(), bot.Question{Text: text})
		fmt.Printf("%.2f %-13q %s\n", a.Confidence, a.Topic, a.Text)
	}
	// Output:
	// 1.00 "opening_hours" Monday to Saturday, 9:00 to 18:00.
	// 0.55 "opening_hours" Monday to Saturday, 9:00 to 18:00.
	// 0.11 ""            Sorry, I don't know that one.
}

func ExampleHTTPBot() {
	fake := bottest.Start() // in tests: bottest.New(t)
	defer fake.Close()
	fake.Answer("Where is my parcel?", bot.Answer{Text: "It arrives tomorrow.", Confidence: 0.91, Topic: "tracking"})

	b := &bot.HTTPBot{URL: fake.URL}
	q := bot.Question{Conversation: "c1", Text: "Where is my parcel?"}
	a, err := b.Ask(context.Background(), q)
	fmt.Println(a.Text, a.Confidence, a.Topic, err)

	// On any failure the bot counts as not confident, so the rules escalate.
	fake.Fail(http.StatusServiceUnavailable)
	a, err = b.Ask(context.Background(), q)
	if err != nil {
		fmt.Println("retryable:", bot.Retryable(err))
		a = bot.NotConfident(err)
	}
	fmt.Printf("%q %v %s\n", a.Text, a.Confidence, a.Topic)
	// Output:
	// It arrives tomorrow. 0.91 tracking <nil>
	// retryable: true
	// "" 0 bot_error
}
