package bot_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-dev/triage/connectors/bot"
)

const shopFAQ = "../../examples/faq.yaml"

func loadShop(t testing.TB) *bot.FAQ {
	t.Helper()
	f, err := bot.LoadFAQ(shopFAQ)
	if err != nil {
		t.Fatalf("LoadFAQ: %v", err)
	}
	return f
}

func ask(t testing.TB, b bot.Bot, text string) bot.Answer {
	t.Helper()
	a, err := b.Ask(context.Background(), bot.Question{Conversation: "c1", Text: text})
	if err != nil {
		t.Fatalf("Ask(%q): %v", text, err)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("Ask(%q) = %+v, not a valid answer: %v", text, a, err)
	}
	return a
}

func TestFAQExactQuestionScoresOne(t *testing.T) {
	f := loadShop(t)
	for _, e := range f.Entries() {
		for _, p := range append([]string{e.Question}, e.Alternatives...) {
			a := ask(t, f, p)
			if a.Confidence != 1 {
				t.Errorf("%q: confidence %v, want exactly 1", p, a.Confidence)
			}
			if a.Text != e.Answer || a.Topic != e.Topic || a.Resolved != e.Resolves {
				t.Errorf("%q: answered %+v, want the entry at line %d", p, a, e.Line)
			}
		}
	}
}

func TestFAQFoldsCaseAndPunctuation(t *testing.T) {
	f := loadShop(t)
	for _, text := range []string{
		"how do i cancel my order",
		"HOW DO I CANCEL MY ORDER???",
		"  How do I cancel... my ORDER!!  ",
		"how-do-i-cancel-my-order",
		"🙏 How do I cancel my order? 🙏",
	} {
		a := ask(t, f, text)
		if a.Topic != "cancel_order" || a.Confidence != 1 {
			t.Errorf("%q: %+v, want cancel_order with confidence 1", text, a)
		}
	}
	// Unicode folding comes from textmatch.Tokens: ß and SS agree.
	g, err := bot.ParseFAQ([]byte("entries:\n  - {question: 'Wo ist die Straße?', answer: Hier., topic: way}\n  - {question: Öffnungszeiten, answer: 9-18., topic: hours}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := ask(t, g, "WO IST DIE STRASSE"); a.Topic != "way" || a.Confidence != 1 {
		t.Errorf("folded German: %+v", a)
	}
}

func TestFAQParaphraseScoresHigh(t *testing.T) {
	f := loadShop(t)
	for _, tc := range []struct {
		text, topic string
	}{
		{"what time do you open on saturday", "opening_hours"},
		{"how long does shipping take to Leeds", "delivery"},
		{"what size should I get", "size_guide"},
		{"I need a VAT invoice for my company", "invoice"},
		{"is there a shop in Manchester", "store_locations"},
		{"I can't log in", "account"},
	} {
		a := ask(t, f, tc.text)
		if a.Topic != tc.topic || a.Confidence < 0.6 {
			t.Errorf("%q: topic %q confidence %.3f, want %s at 0.6 or more", tc.text, a.Topic, a.Confidence, tc.topic)
		}
		if a.Confidence >= 1 {
			t.Errorf("%q: a paraphrase scored %v, as high as an exact match", tc.text, a.Confidence)
		}
	}
}

func TestFAQUnrelatedGetsFallback(t *testing.T) {
	f := loadShop(t)
	for _, text := range []string{
		"what is the meaning of life",
		"Can you recommend a good book?",
		"who won the football last night",
		"hello",
		"thanks!",
		"👍",
		"",
	} {
		a := ask(t, f, text)
		if a.Confidence >= 0.3 {
			t.Errorf("%q: confidence %.3f, want below 0.3", text, a.Confidence)
		}
		if a.Text != f.Fallback() || a.Topic != "" || a.Resolved {
			t.Errorf("%q: answered %+v, want the fallback, no topic, not resolved", text, a)
		}
	}
}

// TestShopFAQ asks the example FAQ the way customers write, typos of
// thought included, and checks each lands on the right topic with a
// confidence at or above the file's floor.
func TestShopFAQ(t *testing.T) {
	f := loadShop(t)
	for _, tc := range []struct {
		text, topic string
	}{
		{"hi, when do you open on saturday", "opening_hours"},
		{"are you open on easter monday? it's a bank holiday", "opening_hours"},
		{"where is my order??", "tracking"},
		{"when will my package arrive", "delivery"},
		{"how much is shipping", "delivery"},
		{"do you deliver on saturdays", "delivery"},
		{"my parcel still hasn't arrived, can you give me the tracking number", "tracking"},
		{"I want to send back these shoes", "refund"},
		{"can I return a sale item", "refund"},
		{"How long does it take to get my refund", "refund"},
		{"can i pay with paypal", "payment"},
		{"Do you accept Visa?", "payment"},
		{"I moved, need to update delivery address for order 1234", "change_address"},
		{"please cancel my order", "cancel_order"},
		{"do you ship to Canada?", "international_shipping"},
		{"my blender stopped working after 3 months, is it under warranty", "warranty"},
		{"is there a shop in Manchester", "store_locations"},
		{"what's your phone number", "contact"},
		{"what size should I get", "size_guide"},
		{"my promo code isn't working", "discount_codes"},
		{"the discount code WELCOME10 is not accepted", "discount_codes"},
		{"forgot my password", "account"},
		{"I can't log in", "account"},
		{"I need a VAT invoice for my company", "invoice"},
		{"hi can i get a receipt for my order please", "invoice"},
	} {
		a := ask(t, f, tc.text)
		if a.Topic != tc.topic {
			t.Errorf("%q: topic %q (confidence %.3f), want %q", tc.text, a.Topic, a.Confidence, tc.topic)
		}
		if a.Confidence < f.MinConfidence() || a.Confidence > 1 {
			t.Errorf("%q: confidence %.3f out of range", tc.text, a.Confidence)
		}
	}
}

func TestShopFAQCoversTheTopics(t *testing.T) {
	want := []string{"opening_hours", "delivery", "tracking", "refund", "payment", "change_address",
		"cancel_order", "international_shipping", "warranty", "store_locations", "contact",
		"size_guide", "discount_codes", "account", "invoice"}
	var got []string
	for _, e := range loadShop(t).Entries() {
		got = append(got, e.Topic)
		if len(e.Alternatives) < 3 {
			t.Errorf("entry %s (line %d) has %d alternatives, want 3 or more", e.Topic, e.Line, len(e.Alternatives))
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("topics %v, want %v", got, want)
	}
}

// TestFAQConfidenceIsCosine checks the formula by hand on a small FAQ.
func TestFAQConfidenceIsCosine(t *testing.T) {
	f, err := bot.ParseFAQ([]byte(`
entries:
  - question: red apple
    answer: A.
  - question: green apple
    answer: B.
  - question: blue sky
    answer: C.
min_confidence: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	// N = 3; df(apple) = 2, df(red) = df(green) = 1; "pear" is in no entry.
	idf := func(df float64) float64 { return math.Log(4 / (df + 0.5)) }
	apple, red, pear := idf(2), idf(1), idf(0)
	// "red pear" against "red apple": only red is shared.
	want := red * red / (math.Hypot(red, pear) * math.Hypot(red, apple))
	a := ask(t, f, "red pear")
	if math.Abs(a.Confidence-want) > 1e-9 || a.Text != "A." {
		t.Errorf("red pear: %+v, want confidence %.9f from A", a, want)
	}
	// "apple" alone: red apple and green apple tie; the first entry wins.
	want = apple / math.Hypot(red, apple)
	if a := ask(t, f, "apple apple"); math.Abs(a.Confidence-want) > 1e-9 || a.Text != "A." {
		t.Errorf("apple apple: %+v, want confidence %.9f from A", a, want)
	}
	// No shared word: confidence 0 and the fallback, even with a floor of 0.
	if a := ask(t, f, "pear"); a.Confidence != 0 || a.Text != bot.DefaultFallback {
		t.Errorf("pear: %+v, want the fallback at 0", a)
	}
}

func TestFAQPlurals(t *testing.T) {
	f, err := bot.ParseFAQ([]byte(`
entries:
  - {question: "How long does a refund take?", answer: A., topic: refund}
  - {question: "Which country do you deliver to?", answer: B., topic: country}
  - {question: "What is your address?", answer: C., topic: address}
  - {question: "Where are your stores?", answer: D., topic: stores}
`))
	if err != nil {
		t.Fatal(err)
	}
	// A plural finds the singular and the other way round, scoring as the
	// word itself would; words ending in ss keep their s.
	for text, topic := range map[string]string{
		"refunds":   "refund",
		"countries": "country",
		"store":     "stores",
		"address":   "address",
		"addresses": "",
	} {
		a := ask(t, f, text)
		if a.Topic != topic {
			t.Errorf("%q: topic %q (%.3f), want %q", text, a.Topic, a.Confidence, topic)
		}
	}
	if p, s := ask(t, f, "refunds please"), ask(t, f, "refund please"); p != s {
		t.Errorf("plural %+v, singular %+v", p, s)
	}
}

func TestFAQEmptyAlternatives(t *testing.T) {
	f, err := bot.ParseFAQ([]byte("entries:\n  - question: a\n    alternatives:\n    answer: b\n  - question: c\n    alternatives: []\n    answer: d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if es := f.Entries(); len(es) != 2 || len(es[0].Alternatives) != 0 || len(es[1].Alternatives) != 0 {
		t.Errorf("entries %+v", es)
	}
}

func TestFAQFloorAndFallback(t *testing.T) {
	src := `
fallback: Ask me something else.
min_confidence: 0.9
entries:
  - question: opening hours
    answer: Nine to five.
    topic: hours
    resolves: true
`
	f, err := bot.ParseFAQ([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f.MinConfidence() != 0.9 || f.Fallback() != "Ask me something else." {
		t.Errorf("floor %v fallback %q", f.MinConfidence(), f.Fallback())
	}
	a := ask(t, f, "your opening times")
	if a.Confidence <= 0 || a.Confidence >= 0.9 {
		t.Fatalf("partial match scored %v", a.Confidence)
	}
	// Below the floor: the fallback, but the confidence is still the honest
	// cosine, not 0 and not raised.
	if a.Text != "Ask me something else." || a.Topic != "" || a.Resolved {
		t.Errorf("below the floor: %+v", a)
	}
	if a := ask(t, f, "Opening hours?"); a.Text != "Nine to five." || !a.Resolved || a.Topic != "hours" {
		t.Errorf("exact: %+v", a)
	}
}

func TestFAQDeterministic(t *testing.T) {
	data, err := os.ReadFile(shopFAQ)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"where is my order", "do you ship to the moon", "size", "refund invoice address", "what is the meaning of life"}
	var first []bot.Answer
	for range 20 {
		f, err := bot.ParseFAQ(data)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			a := ask(t, f, text)
			if first == nil || len(first) <= i {
				first = append(first, a)
			} else if a != first[i] {
				t.Fatalf("%q: %+v, earlier %+v", text, a, first[i])
			}
		}
	}
}

func TestFAQAskCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := loadShop(t).Ask(ctx, bot.Question{Text: "where is my order"}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestParseFAQErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // each "line:col: fragment", in order
	}{
		{"empty", "", []string{"1:1: the file is empty"}},
		{"comment only", "# nothing\n", []string{"1:1: the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"1:1: faq must be a mapping, not a list"}},
		{"syntax", "entries:\n  - question: a\n    answer: b: c\n", []string{"3: invalid YAML: mapping values are not allowed"}},
		{"unclosed quote", "entries:\n  - question: a\n    answer: \"b\n", []string{"3: invalid YAML: found unexpected end of stream"}},
		{"tab", "entries:\n\t- question: a\n", []string{"2: invalid YAML: found character that cannot start any token"}},
		{"no entries key", "fallback: x\n", []string{"1:1: faq: missing entries"}},
		{"empty entries", "entries: []\n", []string{"1:10: entries must hold at least one entry"}},
		{"entries not a list", "entries: {question: a}\n", []string{"1:10: entries must be a list, not a mapping"}},
		{"unknown top key", "entries:\n  - {question: a, answer: b}\nfalback: x\n", []string{`3:1: faq: unknown key "falback" (did you mean "fallback"?)`}},
		{"unknown entry key", "entries:\n  - question: a\n    anwser: b\n", []string{
			`3:5: entry 1: unknown key "anwser" (did you mean "answer"?)`,
		}},
		{"unrelated key", "entries:\n  - question: a\n    answer: b\n    priority: 3\n", []string{
			`4:5: entry 1: unknown key "priority"; known keys: question, alternatives, answer, topic, resolves`,
		}},
		{"repeated key", "entries:\n  - question: a\n    answer: b\n    answer: c\n", []string{`4:5: entry 1: key "answer" repeated (first at line 3)`}},
		{"misspelt entries", "entires:\n  - {question: a, answer: b}\n", []string{`1:1: faq: unknown key "entires" (did you mean "entries"?)`}},
		{"missing question", "entries:\n  - answer: b\n", []string{"2:5: entry 1: missing question"}},
		{"null question", "entries:\n  - question:\n    answer: b\n", []string{"2:14: entry 1 question must be a string, not null"}},
		{"blank answer", "entries:\n  - question: a\n    answer: '  '\n", []string{"3:13: entry 1 answer must not be empty"}},
		{"question without words", "entries:\n  - question: '???'\n    answer: b\n", []string{`2:15: entry 1 question "???" has no words to match`}},
		{"entry not a mapping", "entries:\n  - just a string\n", []string{"2:5: entry 1 must be a mapping, not a scalar"}},
		{"alternatives not a list", "entries:\n  - question: a\n    alternatives: b\n    answer: c\n", []string{"3:19: entry 1 alternatives must be a list, not a scalar"}},
		{"alternative a list", "entries:\n  - question: a\n    alternatives: [[b]]\n    answer: c\n", []string{"3:20: entry 1 alternatives entry must be a string, not a list"}},
		{"resolves not bool", "entries:\n  - question: a\n    answer: b\n    resolves: yes\n", []string{`4:15: entry 1 resolves must be true or false, not "yes"`}},
		{"floor out of range", "min_confidence: 1.5\nentries:\n  - {question: a, answer: b}\n", []string{`1:17: min_confidence must be a number from 0 to 1, not "1.5"`}},
		{"floor a string", "min_confidence: high\nentries:\n  - {question: a, answer: b}\n", []string{`1:17: min_confidence must be a number from 0 to 1, not "high"`}},
		{"blank fallback", "fallback: ''\nentries:\n  - {question: a, answer: b}\n", []string{"1:11: fallback must not be empty"}},
		{"same words in two entries", "entries:\n  - {question: 'Where is my order?', answer: a}\n  - question: b\n    alternatives: [my order, 'where is?']\n    answer: c\n  - {question: 'ORDER: where is my', answer: d}\n",
			[]string{`6:16: "ORDER: where is my" has the same words as "Where is my order?" at line 2`}},
		{"merge key", "base: &b {answer: x}\nentries:\n  - {<<: *b, question: a}\n", []string{
			`1:1: faq: unknown key "base"`,
			`3:5: entry 1: missing answer`,
			`3:6: entry 1: merge keys (<<) are not supported`,
		}},
		{"two documents", "entries:\n  - {question: a, answer: b}\n---\nentries: []\n", []string{"3:1: a FAQ file holds one YAML document"}},
		{"several problems", "entries:\n  - {question: a}\n  - {answer: b}\n  - {question: c, answer: d, topic: [x]}\n", []string{
			"2:5: entry 1: missing answer",
			"3:5: entry 2: missing question",
			"4:37: entry 3 topic must be a string, not a list",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := bot.ParseFAQ([]byte(tc.src))
			if err == nil {
				t.Fatalf("parsed into %+v, want errors %v", f.Entries(), tc.want)
			}
			if f != nil {
				t.Errorf("a FAQ came back with the error")
			}
			var pe *bot.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v, want *bot.ParseError", err, err)
			}
			if len(pe.Problems) != len(tc.want) {
				t.Fatalf("problems:\n%v\nwant %d:\n%s", err, len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, p := range pe.Problems {
				if got := p.String(); !strings.HasPrefix(got, tc.want[i]) {
					t.Errorf("problem %d = %q, want it to start %q", i, got, tc.want[i])
				}
			}
			if !strings.HasPrefix(err.Error(), "faq:") {
				t.Errorf("error %q should start with faq:", err)
			}
		})
	}
}

func TestLoadFAQNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "faq.yaml")
	if err := os.WriteFile(path, []byte("entries:\n  - question: a\n    answr: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bot.LoadFAQ(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3:5: entry 1: unknown key \"answr\"") {
		t.Errorf("error %v should start with %s:3:5", err, path)
	}
	_, err = bot.LoadFAQ(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestFAQEntriesIsACopy(t *testing.T) {
	f := loadShop(t)
	es := f.Entries()
	es[0].Answer = "changed"
	es[0].Alternatives[0] = "changed"
	if again := f.Entries(); again[0].Answer == "changed" || again[0].Alternatives[0] == "changed" {
		t.Error("Entries shares its slices with the FAQ")
	}
}

func BenchmarkFAQAsk(b *testing.B) {
	f := loadShop(b)
	q := bot.Question{Text: "hi, my parcel still hasn't arrived, where can I find the tracking number?"}
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.Ask(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
