package bot_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/triage-dev/triage/connectors/bot"
)

// FuzzParseFAQ checks that no input makes ParseFAQ panic, that a refused
// file always comes with positioned problems, and that an accepted one
// keeps the promises of FAQ: valid answers, confidence in 0..1, and
// exactly 1 for every question and alternative asked as written.
func FuzzParseFAQ(f *testing.F) {
	if data, err := os.ReadFile(shopFAQ); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"entries:\n  - {question: a, answer: b}\n",
		"entries:\n  - question: 'Où est ma commande ?'\n    alternatives: [ma commande, suivi]\n    answer: Ici.\n    topic: tracking\n    resolves: true\n",
		"min_confidence: 0\nfallback: x\nentries:\n  - {question: a a b, answer: x}\n  - {question: a b b, answer: y}\n",
		"entries:\n  - question: a\n    anwser: b\n",
		"a: &x [1, 2]\nentries: *x\n",
		"entries:\n  - &e {question: a, answer: b}\n  - *e\n",
		"entries:\n\t- question: a\n",
		"---\nentries: []\n---\n",
		"entries: [{question: '???', answer: b}]",
		"entries:\n  - {question: 'ǅ ß ΣΑΣ', alternatives: ['Ꭰ ꭰ'], answer: z}\n",
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		faq, err := bot.ParseFAQ(data)
		if err != nil {
			if faq != nil {
				t.Fatal("a FAQ came back with an error")
			}
			var pe *bot.ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %T %v: want a *ParseError with problems", err, err)
			}
			for _, p := range pe.Problems {
				if p.Line < 1 || p.Column < 0 || p.Message == "" {
					t.Fatalf("problem %+v has no position or message", p)
				}
			}
			return
		}
		check := func(text string) bot.Answer {
			a, err := faq.Ask(ctx, bot.Question{Text: text})
			if err != nil {
				t.Fatalf("Ask(%q): %v", text, err)
			}
			if err := a.Validate(); err != nil {
				t.Fatalf("Ask(%q) = %+v: %v", text, a, err)
			}
			return a
		}
		check(string(data))
		for _, e := range faq.Entries() {
			for _, p := range append([]string{e.Question}, e.Alternatives...) {
				if a := check(p); a.Confidence != 1 {
					t.Fatalf("exact phrasing %q scored %v", p, a.Confidence)
				}
			}
		}
	})
}
