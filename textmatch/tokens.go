// Package textmatch decides whether keyword lists occur in a text as whole
// words or phrases, ignoring case.
//
// Rule sets may hold hundreds of keyword lists, so the text of an event is
// normalised and tokenised once and then every list is tested in a single
// walk of a phrase trie (see Matcher) instead of scanning the text once per
// rule.
package textmatch

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// isWordByte tells, for an ASCII byte, whether it belongs to a word; a table
// keeps the common ASCII case free of unicode package calls.
var isWordByte = func() (t [utf8.RuneSelf]bool) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// folders pools case folders because a cases.Caser keeps state between
// calls and so cannot be shared by concurrent callers.
var folders = sync.Pool{New: func() any {
	c := cases.Fold()
	return &c
}}

// Tokens returns the normalised word tokens of s.
//
// The text is split on every rune that is not a letter, digit or mark, so
// punctuation, spaces, symbols and emoji never take part in a match. Each
// token is then case-folded with full Unicode folding (so "Straße" and
// "STRASSE" agree, and final sigma is treated like sigma) and put in NFC, so
// that precomposed and combining spellings of a letter compare equal. Empty
// tokens are dropped. Tokens that need no change are substrings of s rather
// than copies, which keeps lowercase ASCII text free of allocation.
func Tokens(s string) []string {
	return AppendTokens(nil, s)
}

// AppendTokens is like Tokens but appends to dst, letting callers that
// tokenise many texts reuse one buffer.
func AppendTokens(dst []string, s string) []string {
	start := -1   // byte offset of the token being scanned, or -1
	ascii := true // whether the current token is pure ASCII
	upper := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if isWordByte[c] {
				if start < 0 {
					start, ascii, upper = i, true, false
				}
				if 'A' <= c && c <= 'Z' {
					upper = true
				}
			} else if start >= 0 {
				dst = appendToken(dst, s[start:i], ascii, upper)
				start = -1
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		// Invalid UTF-8 decodes to RuneError, which is a symbol and so
		// splits like any other separator.
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
			if start < 0 {
				start, upper = i, false
			}
			ascii = false
		} else if start >= 0 {
			dst = appendToken(dst, s[start:i], ascii, upper)
			start = -1
		}
		i += size
	}
	if start >= 0 {
		dst = appendToken(dst, s[start:], ascii, upper)
	}
	return dst
}

// appendToken normalises one raw token. Lowercase ASCII tokens, by far the
// most common kind, are substrings of the input and cost no allocation.
func appendToken(dst []string, tok string, ascii, upper bool) []string {
	if ascii {
		if upper {
			tok = asciiLower(tok)
		}
		return append(dst, tok)
	}
	return appendUnicode(dst, tok)
}

func asciiLower(s string) string {
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}

// appendUnicode folds and normalises a token that holds non-ASCII runes.
//
// Folding runs on the NFD form, as in Unicode's canonical caseless match,
// because folding can change a combining mark (U+0345 folds to a letter) and
// so give different results for canonically equivalent spellings. Folding
// can also produce runes that are neither letters, digits nor marks, so the
// result is split again to keep Tokens idempotent.
func appendUnicode(dst []string, tok string) []string {
	f := folders.Get().(*cases.Caser)
	folded := f.String(norm.NFD.String(tok))
	folders.Put(f)
	folded = fixCherokee(folded)
	folded = norm.NFC.String(folded)
	start := -1
	for i, r := range folded {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			dst = append(dst, folded[start:i])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, folded[start:])
	}
	return dst
}

// fixCherokee undoes a bug in golang.org/x/text v0.14.0, whose Fold swaps
// Cherokee case instead of folding to one form: it maps capital letters to
// small ones and small ones to capitals, so folding is not idempotent and
// "Ꭰ" and "ꭰ" never compare equal. Unicode's CaseFolding.txt folds the small
// letters (added later) to the capitals, so every small letter left in the
// output is turned into its capital.
func fixCherokee(s string) string {
	if !strings.ContainsFunc(s, isCherokeeSmall) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isCherokeeSmall(r) {
			return unicode.ToUpper(r)
		}
		return r
	}, s)
}

func isCherokeeSmall(r rune) bool {
	return 0xAB70 <= r && r <= 0xABBF || 0x13F8 <= r && r <= 0x13FD
}
