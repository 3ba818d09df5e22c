package slack_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/triage-dev/triage/connectors/slack"
	"github.com/triage-dev/triage/connectors/slack/slacktest"
)

// A channel with an incoming webhook is posted through it; any other goes
// through chat.postMessage with the bot token.
func Example() {
	fake := slacktest.NewServer() // stands in for Slack on loopback
	defer fake.Close()

	c, err := slack.New(slack.Config{
		Webhooks: map[string]string{"#support-urgent": fake.WebhookURL("#support-urgent")},
		BotToken: "xoxb-example",
		APIURL:   fake.APIURL, // https://slack.com/api when empty
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	_ = c.Post(ctx, "#support-urgent", "Refund over $500 from +15551234567", "evt-1/refund/0")
	_ = c.Post(ctx, "#leads", "anita is away", "evt-2/away/0")

	for _, r := range fake.Requests() {
		fmt.Printf("%s %s %s auth=%q\n", r.Transport, r.Channel, r.Body, r.Header.Get("Authorization"))
	}
	// Output:
	// webhook #support-urgent {"text":"Refund over $500 from +15551234567"} auth=""
	// chat.postMessage #leads {"channel":"#leads","text":"anita is away"} auth="Bearer xoxb-example"
}

// A failure says whether to try again, and when.
func ExampleError() {
	fake := slacktest.NewServer()
	defer fake.Close()
	fake.Script(slacktest.RateLimited(30*time.Second), slacktest.APIError("not_in_channel"))

	c, _ := slack.New(slack.Config{BotToken: "xoxb-example", APIURL: fake.APIURL})
	for _, ch := range []string{"#leads", "#ops"} {
		err := c.Post(context.Background(), ch, "hello", "")
		var se *slack.Error
		if errors.As(err, &se) {
			fmt.Printf("%v\n  retryable=%v after=%v\n", err, se.Retryable(), se.RetryAfter())
		}
	}
	// Output:
	// slack: channel "#leads": chat.postMessage: 429 ratelimited (retry after 30s)
	//   retryable=true after=30s
	// slack: channel "#ops": chat.postMessage: not_in_channel
	//   retryable=false after=0s
}
