package textmatch_test

import (
	"fmt"

	"github.com/triage-dev/triage/textmatch"
)

func ExampleMatcher() {
	b := textmatch.NewBuilder()
	escalate := b.Add([]string{"speak to someone", "manager"})
	refund := b.Add([]string{"refund", "money back"})
	urgent := b.Add([]string{"now", "asap"})
	m := b.Build()

	// Tokenise once, then test every list in one pass.
	tokens := textmatch.Tokens("Can I SPEAK TO SOMEONE? I know you're busy.")
	var hits textmatch.Hits
	m.Match(tokens, &hits)

	fmt.Println("escalate:", hits.Has(escalate))
	fmt.Println("refund:", hits.Has(refund))
	fmt.Println("urgent:", hits.Has(urgent)) // "know" is not "now"
	// Output:
	// escalate: true
	// refund: false
	// urgent: false
}

func ExampleContainsAny() {
	fmt.Println(textmatch.ContainsAny("Ich möchte in die STRASSE", []string{"straße"}))
	fmt.Println(textmatch.ContainsAny("I know", []string{"now"}))
	// Output:
	// true
	// false
}

func ExampleTokens() {
	fmt.Printf("%q\n", textmatch.Tokens("Don't SHOUT, Straße! 👍"))
	// Output:
	// ["don" "t" "shout" "strasse"]
}
