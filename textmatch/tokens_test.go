package textmatch

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only separators", " \t\n.,;!?-", nil},
		{"ascii lower", "hello world", []string{"hello", "world"}},
		{"ascii mixed case", "Hello WoRLD", []string{"hello", "world"}},
		{"punctuation", "Hi!!! Where's my order?!", []string{"hi", "where", "s", "my", "order"}},
		{"apostrophe", "don't", []string{"don", "t"}},
		{"curly apostrophe", "don\u2019t", []string{"don", "t"}},
		{"digits", "order #12345, ref A7b", []string{"order", "12345", "ref", "a7b"}},
		{"underscore and hyphen split", "e-mail user_name", []string{"e", "mail", "user", "name"}},
		{"german sharp s", "Straße", []string{"strasse"}},
		{"german upper", "STRASSE", []string{"strasse"}},
		{"capital sharp s", "\u1e9e", []string{"ss"}},
		{"greek final sigma", "ΣΊΣΥΦΟΣ σίσυφος", []string{"σίσυφοσ", "σίσυφοσ"}},
		{"turkish dotted I default fold", "İstanbul", []string{"i\u0307stanbul"}},
		{"precomposed e acute", "caf\u00e9", []string{"caf\u00e9"}},
		{"combining e acute", "cafe\u0301", []string{"caf\u00e9"}},
		{"upper combining", "CAFE\u0301", []string{"caf\u00e9"}},
		{"ligature", "\ufb01ne", []string{"fine"}},
		{"kelvin sign", "\u212a", []string{"k"}},
		{"cherokee capital", "\u13a0\u13f5", []string{"\u13a0\u13f5"}},
		{"cherokee small folds to capital", "\uab70\u13fd", []string{"\u13a0\u13f5"}},
		{"ypogegrammeni order", "\u1fb4 α\u0345\u0301 α\u0301\u0345", []string{"άι", "άι", "άι"}},
		{"emoji dropped", "ok👍 👋🏽 thanks", []string{"ok", "thanks"}},
		{"flag and zwj dropped", "🇩🇪 👩\u200d💻", nil},
		{"cjk", "你好，世界", []string{"你好", "世界"}},
		{"invalid utf8 splits", "ab\xffcd", []string{"ab", "cd"}},
		{"leading and trailing", "  --now--  ", []string{"now"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Tokens(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Tokens(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendTokensReusesBuffer(t *testing.T) {
	buf := make([]string, 0, 16)
	buf = AppendTokens(buf, "first text")
	buf = AppendTokens(buf[:0], "Second, TEXT")
	if want := []string{"second", "text"}; !slices.Equal(buf, want) {
		t.Fatalf("got %q, want %q", buf, want)
	}
	got := AppendTokens([]string{"keep"}, "x")
	if want := []string{"keep", "x"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestTokensASCIIFastPath guards the fast path: lowercase ASCII must cost
// nothing, which it could not if it went through x/text.
func TestTokensASCIIFastPath(t *testing.T) {
	buf := make([]string, 0, 32)
	text := "hi, i was charged twice for order 1234 and i want a refund now"
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendTokens(buf[:0], text)
	})
	if allocs != 0 {
		t.Fatalf("AppendTokens on lowercase ASCII allocated %v times per run, want 0", allocs)
	}
}

// TestASCIIFastPathAgreesWithUnicode checks that the hand-written ASCII path
// gives what full folding would.
func TestASCIIFastPathAgreesWithUnicode(t *testing.T) {
	for _, tok := range []string{"abc", "ABC", "MiXeD09", "Z", "0"} {
		fast := Tokens(tok)
		slow := appendUnicode(nil, tok)
		if !slices.Equal(fast, slow) {
			t.Errorf("token %q: fast path %q, unicode path %q", tok, fast, slow)
		}
	}
}

// TestTokensEveryRune checks every code point on its own: tokens must be
// stable under re-tokenising, and all case variants of a letter (its simple
// fold orbit) must give the same tokens. This is how the x/text Cherokee bug
// worked around in fixCherokee was found.
func TestTokensEveryRune(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		toks := Tokens(string(r))
		if again := Tokens(strings.Join(toks, " ")); !slices.Equal(toks, again) {
			t.Errorf("%U: Tokens gives %q, then %q", r, toks, again)
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if other := Tokens(string(f)); !slices.Equal(toks, other) {
				t.Errorf("%U gives %q but its case variant %U gives %q", r, toks, f, other)
			}
		}
	}
}

// checkTokens verifies the invariants that matching relies on.
func checkTokens(t *testing.T, s string) {
	t.Helper()
	toks := Tokens(s)
	for _, tok := range toks {
		if tok == "" {
			t.Fatalf("Tokens(%q) has an empty token: %q", s, toks)
		}
		if !utf8.ValidString(tok) {
			t.Fatalf("Tokens(%q) has invalid UTF-8 token %q", s, tok)
		}
		for _, r := range tok {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
				t.Fatalf("Tokens(%q) token %q holds separator %U", s, tok, r)
			}
		}
		if !norm.NFC.IsNormalString(tok) {
			t.Fatalf("Tokens(%q) token %q is not NFC", s, tok)
		}
	}
	again := Tokens(strings.Join(toks, " "))
	if !slices.Equal(toks, again) {
		t.Fatalf("Tokens not idempotent on %q: %q then %q", s, toks, again)
	}
}

func FuzzTokens(f *testing.F) {
	for _, s := range []string{
		"", "hello", "Don't STOP", "Straße", "ΣΊΣΥΦΟΣ", "İı", "cafe\u0301",
		"\u1fb4α\u0345\u0301", "\ufb01", "👍🏽ok", "ab\xffcd", "你好，世界",
		"\u0301\u0301", "ǅ ǆ Ǆ", "ᾼ ᾳ", "\u0345",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkTokens(t, s)
		// The same text with its case changed must give the same tokens
		// for ASCII, where upper and lower case are exact inverses.
		if isASCII(s) {
			if a, b := Tokens(strings.ToUpper(s)), Tokens(strings.ToLower(s)); !slices.Equal(a, b) {
				t.Fatalf("case changed tokens of %q: %q vs %q", s, a, b)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
