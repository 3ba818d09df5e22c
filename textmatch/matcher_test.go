package textmatch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestContainsAnyAndMatcher(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		phrases []string
		want    bool
	}{
		{"word inside word", "I know", []string{"now"}, false},
		{"word with punctuation", "I need it now!", []string{"now"}, true},
		{"word at start", "Now please", []string{"now"}, true},
		{"phrase any case", "Can I SPEAK TO SOMEONE?", []string{"speak to someone"}, true},
		{"phrase split differently", "can I speak to some one", []string{"speak to someone"}, false},
		{"phrase with extra spaces", "speak   to\tsomeone", []string{"speak to someone"}, true},
		{"phrase across punctuation", "speak, to... someone", []string{"speak to someone"}, true},
		{"phrase out of order", "someone to speak", []string{"speak to someone"}, false},
		{"phrase truncated", "please let me speak to", []string{"speak to someone"}, false},
		{"prefix phrase only", "let me speak to a human", []string{"speak to someone", "speak to"}, true},
		{"longer phrase only", "speak to someone", []string{"speak to someone else", "speak to someone"}, true},
		{"second entry hits", "where is my refund", []string{"cancel", "refund"}, true},
		{"no hit", "thanks, all good", []string{"refund", "cancel", "speak to someone"}, false},
		{"empty text", "", []string{"now"}, false},
		{"empty list", "now", nil, false},
		{"empty phrase ignored", "anything", []string{"", "  ", "!!"}, false},
		{"sharp s", "STRASSE", []string{"straße"}, true},
		{"final sigma", "ΟΔΥΣΣΕΥΣ", []string{"οδυσσευς"}, true},
		{"nfc", "Cafe\u0301 closed", []string{"café"}, true},
		{"apostrophe in phrase", "I don't want it", []string{"don't want"}, true},
		{"apostrophe splits", "I don t want it", []string{"don't"}, true},
		{"digits", "order 1234 missing", []string{"1234"}, true},
		{"digits partial", "order 12345 missing", []string{"1234"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainsAny(tt.text, tt.phrases); got != tt.want {
				t.Errorf("ContainsAny(%q, %q) = %v, want %v", tt.text, tt.phrases, got, tt.want)
			}
			b := NewBuilder()
			b.Add([]string{"unrelated filler"})
			id := b.Add(tt.phrases)
			m := b.Build()
			var h Hits
			m.MatchText(tt.text, &h)
			if got := h.Has(id); got != tt.want {
				t.Errorf("Matcher on %q with %q: Has = %v, want %v", tt.text, tt.phrases, got, tt.want)
			}
			if h.Has(0) {
				t.Errorf("filler list matched %q", tt.text)
			}
		})
	}
}

func TestMatcherManyLists(t *testing.T) {
	b := NewBuilder()
	lists := [][]string{
		{"refund", "money back"},         // 0
		{"speak to", "human"},            // 1
		{"speak to someone"},             // 2
		{"cancel", "cancel my order"},    // 3
		{"refund"},                       // 4: same phrase as list 0
		{"now", "now", "urgent", "now"},  // 5: duplicates inside a list
		{"", "   "},                      // 6: nothing usable
		{"money back guarantee"},         // 7: longer than list 0's phrase
		{"to someone", "someone"},        // 8: suffixes of list 2's phrase
		{"speak to someone else please"}, // 9: longer, absent
	}
	for i, l := range lists {
		if id := b.Add(l); id != i {
			t.Fatalf("Add returned id %d, want %d", id, i)
		}
	}
	m := b.Build()
	if m.Len() != len(lists) {
		t.Fatalf("Len = %d, want %d", m.Len(), len(lists))
	}

	tests := []struct {
		text string
		want []int
	}{
		{"I want my MONEY BACK and a refund now!", []int{0, 4, 5}},
		{"Can I speak to someone?", []int{1, 2, 8}},
		{"speak to the manager", []int{1}},
		{"please cancel my order", []int{3}},
		{"money back guarantee", []int{0, 7}},
		{"I know", nil},
		{"", nil},
	}
	var h Hits
	for _, tt := range tests {
		m.MatchText(tt.text, &h)
		for id := range lists {
			want := contains(tt.want, id)
			if h.Has(id) != want {
				t.Errorf("text %q list %d %q: Has = %v, want %v", tt.text, id, lists[id], h.Has(id), want)
			}
			if ca := ContainsAny(tt.text, lists[id]); ca != want {
				t.Errorf("text %q list %d %q: ContainsAny = %v, want %v", tt.text, id, lists[id], ca, want)
			}
		}
	}
}

func contains(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestMatchResetsHits(t *testing.T) {
	b := NewBuilder()
	b.Add([]string{"alpha"})
	b.Add([]string{"beta"})
	m := b.Build()
	var h Hits
	m.MatchText("alpha", &h)
	if !h.Has(0) || h.Has(1) {
		t.Fatalf("after alpha: Has(0)=%v Has(1)=%v", h.Has(0), h.Has(1))
	}
	m.MatchText("beta", &h)
	if h.Has(0) || !h.Has(1) {
		t.Fatalf("after beta: stale hit kept, Has(0)=%v Has(1)=%v", h.Has(0), h.Has(1))
	}
}

func TestBuilderReuse(t *testing.T) {
	b := NewBuilder()
	b.Add([]string{"one"})
	m1 := b.Build()
	b.Add([]string{"two"})
	m2 := b.Build()
	if m1.Len() != 1 || m2.Len() != 2 {
		t.Fatalf("Len = %d, %d, want 1, 2", m1.Len(), m2.Len())
	}
	var h Hits
	m1.MatchText("two", &h)
	if h.Has(1) {
		t.Fatal("matcher built earlier sees a list added later")
	}
	m2.MatchText("two", &h)
	if !h.Has(1) {
		t.Fatal("second matcher misses list 1")
	}
}

func TestHits(t *testing.T) {
	var h Hits
	if h.Has(0) || h.Has(-1) || h.Has(1000) {
		t.Fatal("zero Hits is not empty")
	}
	h.Reset(130)
	for _, id := range []int{0, 63, 64, 129} {
		h.set(id)
	}
	for id := -1; id < 200; id++ {
		want := id == 0 || id == 63 || id == 64 || id == 129
		if h.Has(id) != want {
			t.Errorf("Has(%d) = %v, want %v", id, h.Has(id), want)
		}
	}
	old := &h.bits[0]
	h.Reset(70)
	if &h.bits[0] != old {
		t.Error("Reset to a smaller size reallocated")
	}
	for id := 0; id < 200; id++ {
		if h.Has(id) {
			t.Errorf("after Reset, Has(%d) = true", id)
		}
	}
	// A larger Reset after a smaller one must not resurrect old bits.
	h.Reset(130)
	if h.Has(129) {
		t.Error("Reset(130) after Reset(70) kept bit 129")
	}
	h.Reset(0)
	if h.Has(0) {
		t.Error("Has(0) true after Reset(0)")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	m, _ := benchMatcher()
	toks := Tokens(benchText)
	var h Hits
	m.Match(toks, &h)
	allocs := testing.AllocsPerRun(100, func() { m.Match(toks, &h) })
	if allocs != 0 {
		t.Fatalf("Match allocated %v times per run, want 0", allocs)
	}
}

func TestMatcherConcurrent(t *testing.T) {
	m, _ := benchMatcher()
	toks := Tokens(benchText)
	var want Hits
	m.Match(toks, &want)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Hits
			for range 200 {
				m.Match(toks, &h)
				for id := range m.Len() {
					if h.Has(id) != want.Has(id) {
						t.Errorf("list %d: concurrent Has = %v, want %v", id, h.Has(id), want.Has(id))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// randomPhrase draws from a small vocabulary, in mixed case, so that random
// texts and lists overlap often enough for hits and near misses.
var vocab = []string{
	"now", "know", "speak", "to", "someone", "some", "one", "refund",
	"Straße", "strasse", "café", "cafe\u0301", "ΣΟΦΟΣ", "σοφος", "don't",
	"don", "t", "12", "123", "i",
}

var seps = []string{" ", "  ", ", ", "!", "?", "-", "'", " 👍 ", "\n", "."}

func randomWords(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteString(seps[r.IntN(len(seps))])
		}
		w := vocab[r.IntN(len(vocab))]
		switch r.IntN(3) {
		case 0:
			w = strings.ToUpper(w)
		case 1:
			w = strings.ToLower(w)
		}
		sb.WriteString(w)
	}
	return sb.String()
}

func TestMatcherAgreesWithContainsAny(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Hits
	for iter := range 300 {
		b := NewBuilder()
		lists := make([][]string, 1+r.IntN(20))
		for i := range lists {
			phrases := make([]string, r.IntN(4))
			for j := range phrases {
				phrases[j] = randomWords(r, r.IntN(4))
			}
			lists[i] = phrases
			b.Add(phrases)
		}
		m := b.Build()
		for range 10 {
			text := randomWords(r, r.IntN(12))
			m.MatchText(text, &h)
			for id, l := range lists {
				if want := ContainsAny(text, l); h.Has(id) != want {
					t.Fatalf("iteration %d: text %q list %d %q: Matcher %v, ContainsAny %v",
						iter, text, id, l, h.Has(id), want)
				}
			}
		}
	}
}

// FuzzMatch builds a Matcher from lists encoded as lines of "|"-separated
// phrases and checks it against ContainsAny.
func FuzzMatch(f *testing.F) {
	f.Add("I need it now!", "now\nknow")
	f.Add("Can I SPEAK TO SOMEONE?", "speak to someone|speak to\nsomeone else")
	f.Add("speak to some one", "speak to someone")
	f.Add("STRASSE café", "straße|cafe\u0301\nΣΟΦΟΣ")
	f.Add("", "a|b")
	f.Add("a a a b", "a a b|a a a a\n|\nb")
	f.Fuzz(func(t *testing.T, text, spec string) {
		var lists [][]string
		for line := range strings.SplitSeq(spec, "\n") {
			lists = append(lists, strings.Split(line, "|"))
		}
		b := NewBuilder()
		for i, l := range lists {
			if id := b.Add(l); id != i {
				t.Fatalf("Add returned %d, want %d", id, i)
			}
		}
		m := b.Build()
		if m.Len() != len(lists) {
			t.Fatalf("Len = %d, want %d", m.Len(), len(lists))
		}
		var h, h2 Hits
		m.Match(Tokens(text), &h)
		m.MatchText(text, &h2)
		for id, l := range lists {
			want := ContainsAny(text, l)
			if h.Has(id) != want || h2.Has(id) != want {
				t.Fatalf("text %q list %d %q: Match %v, MatchText %v, ContainsAny %v",
					text, id, l, h.Has(id), h2.Has(id), want)
			}
		}
		if h.Has(len(lists)) || h.Has(-1) {
			t.Fatal("Hits holds an id out of range")
		}
	})
}

// benchText is a realistic customer message of about twenty words.
const benchText = "Hi, I was charged TWICE for order #48213 and I still haven't received it. " +
	"Can I speak to someone about a refund now?"

// benchMatcher builds 500 lists of five single words plus some phrases, as a
// large rule set might.
func benchMatcher() (*Matcher, [][]string) {
	r := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("refund charged twice order received cancel speak someone " +
		"manager angry late broken damaged missing invoice billing account password " +
		"login delivery shipping tracking return exchange urgent help support")
	b := NewBuilder()
	var lists [][]string
	for i := range 500 {
		l := make([]string, 0, 7)
		for range 5 {
			if r.IntN(10) == 0 {
				l = append(l, words[r.IntN(len(words))])
			} else {
				l = append(l, fmt.Sprintf("word%d", r.IntN(5000)))
			}
		}
		if i%10 == 0 {
			l = append(l, "speak to someone", "charged twice", fmt.Sprintf("not a phrase %d", i))
		}
		b.Add(l)
		lists = append(lists, l)
	}
	return b.Build(), lists
}

func BenchmarkMatch(b *testing.B) {
	m, _ := benchMatcher()
	toks := Tokens(benchText)
	var h Hits
	b.ReportAllocs()
	for b.Loop() {
		m.Match(toks, &h)
	}
}

func BenchmarkMatchText(b *testing.B) {
	m, _ := benchMatcher()
	var h Hits
	b.ReportAllocs()
	for b.Loop() {
		m.MatchText(benchText, &h)
	}
}

func BenchmarkTokens(b *testing.B) {
	buf := make([]string, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTokens(buf[:0], benchText)
	}
}

// BenchmarkContainsAnyPerList is the cost the Matcher avoids: every list
// scanned separately.
func BenchmarkContainsAnyPerList(b *testing.B) {
	_, lists := benchMatcher()
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lists {
			ContainsAny(benchText, l)
		}
	}
}
