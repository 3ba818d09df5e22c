package bot

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/textmatch"
)

// DefaultMinConfidence is the floor of a FAQ file without min_confidence:
// below it the FAQ answers with its fallback.
const DefaultMinConfidence = 0.3

// DefaultFallback is the answer of a FAQ file without fallback when no
// entry is close enough.
const DefaultFallback = "Sorry, I don't have an answer to that."

// FAQ is the built-in bot: it answers from a list of questions and answers
// read from YAML, for demos and tests. Its file looks like this:
//
//	min_confidence: 0.3     # optional; DefaultMinConfidence
//	fallback: "Sorry, ..."  # optional; DefaultFallback
//	entries:
//	  - question: When are you open?
//	    alternatives: ["opening hours", "are you open on Sunday"]
//	    answer: Monday to Saturday, 9:00 to 18:00.
//	    topic: opening_hours   # optional
//	    resolves: true         # optional; false
//
// Every entry needs a question and an answer; resolves tells that its
// answer settles the question (the Answer's Resolved).
//
// # Confidence
//
// The confidence of an answer is a TF-IDF cosine similarity. Texts are
// turned into words by textmatch.Tokens, which folds case, Unicode
// spellings and punctuation away, and plural endings are dropped (see
// singular: "refunds" counts as "refund"). Each word t gets the weight
//
//	idf(t) = ln((N + 1) / (df(t) + 0.5))
//
// where N is the number of entries and df(t) the number of entries in whose
// question or alternatives t occurs; a word of no entry has df 0 and so the
// highest weight. The idf is always positive, so every word counts, but a
// word found in most entries ("the", "my", "order" in a shop) counts for
// little and a word that names one entry ("refund", "invoice") for much. A
// text is the vector of tf(t)·idf(t) over its words, tf being how often t
// occurs in it. The customer's text is compared with every phrasing (the
// question and each alternative, separately) of every entry by the cosine
// of their vectors,
//
//	cos(q, p) = Σ_t q_t·p_t / (‖q‖·‖p‖)
//
// and the confidence is the highest cosine, rounded to nine decimal places
// (so that an exact match says exactly 1). The entry of that phrasing
// answers; a tie goes to the entry listed first. Below min_confidence the
// FAQ answers with its fallback instead, topic empty and not resolved, but
// still with that low confidence: it does not make up a better one.
//
// The cosine is an honest confidence because it measures only how much of
// the customer's words an entry accounts for, weighted by how telling they
// are. It is 1 exactly when the text has the words of a phrasing in the
// same proportions (an exact match, whatever the case and punctuation),
// and 0 when they share no word. An unrelated question shares at most a
// few common, low-weight words, while its own words, unknown to the FAQ,
// weigh the most and lengthen its vector, so it scores near 0. A
// paraphrase that keeps the telling words scores high, and extra words the
// FAQ does not know lower the score, as they should: the FAQ understood
// less of the message. Nothing is learned or random, so the same file and
// text always give the same answer.
//
// The FAQ looks at the question's text only, not at its history. It is
// safe for concurrent use.
type FAQ struct {
	entries   []Entry
	fallback  string
	floor     float64
	idf       map[string]float64
	unknown   float64           // idf of a word in no entry
	index     map[string][]post // word -> phrasings holding it, in order
	phrasings []int             // entry index of each phrasing
}

// Entry is one question of a FAQ with its answer.
type Entry struct {
	// Question is the main phrasing.
	Question string
	// Alternatives are other phrasings of the question.
	Alternatives []string
	// Answer is the text sent back.
	Answer string
	// Topic is the classification the answer carries; it may be empty.
	Topic string
	// Resolves tells that the answer settles the question.
	Resolves bool
	// Line is the entry's line in its file.
	Line int
}

// post is a word's weight in one phrasing's unit vector.
type post struct {
	phrasing int
	weight   float64
}

// Entries returns a copy of the FAQ's entries, in file order.
func (f *FAQ) Entries() []Entry {
	out := make([]Entry, len(f.entries))
	for i, e := range f.entries {
		e.Alternatives = slices.Clone(e.Alternatives)
		out[i] = e
	}
	return out
}

// Fallback returns the answer given when no entry is close enough.
func (f *FAQ) Fallback() string { return f.fallback }

// MinConfidence returns the floor below which the fallback answers.
func (f *FAQ) MinConfidence() float64 { return f.floor }

// Ask answers q.Text from the FAQ, with the confidence described on FAQ.
// It fails only when ctx is already done.
func (f *FAQ) Ask(ctx context.Context, q Question) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, fmt.Errorf("ask faq: %w", err)
	}
	entry, conf := f.match(q.Text)
	if entry < 0 || conf < f.floor {
		return Answer{Text: f.fallback, Confidence: conf}, nil
	}
	e := f.entries[entry]
	return Answer{Text: e.Answer, Confidence: conf, Topic: e.Topic, Resolved: e.Resolves}, nil
}

// match returns the entry closest to text and its cosine, or -1 and 0 when
// text shares no word with any entry.
func (f *FAQ) match(text string) (int, float64) {
	terms, counts := bag(text)
	if len(terms) == 0 {
		return -1, 0
	}
	scores := make([]float64, len(f.phrasings))
	var norm float64
	for i, t := range terms {
		idf, ok := f.idf[t]
		if !ok {
			idf = f.unknown
		}
		w := float64(counts[i]) * idf
		norm += w * w
		for _, p := range f.index[t] {
			scores[p.phrasing] += w * p.weight
		}
	}
	norm = math.Sqrt(norm)
	// Phrasings are in entry order, so on a tie the first entry stays.
	best, bestScore := -1, 0.0
	for p, s := range scores {
		if s > bestScore {
			best, bestScore = f.phrasings[p], s
		}
	}
	if best < 0 {
		return -1, 0 // no word in common with any entry
	}
	c := bestScore / norm
	c = math.Round(c*1e9) / 1e9
	return best, min(max(c, 0), 1)
}

// bag returns the distinct words of text, sorted, with their counts.
// Sorting fixes the order of the floating-point sums, which keeps scores
// the same from run to run.
func bag(text string) ([]string, []int) {
	toks := textmatch.Tokens(text)
	for i, t := range toks {
		toks[i] = singular(t)
	}
	slices.Sort(toks)
	toks = slices.Clip(toks)
	var terms []string
	var counts []int
	for i, t := range toks {
		if i > 0 && toks[i-1] == t {
			counts[len(counts)-1]++
			continue
		}
		terms = append(terms, t)
		counts = append(counts, 1)
	}
	return terms, counts
}

// singular drops the plural ending of a word, so that "refunds" finds
// "refund" and "deliveries" finds "delivery": a final "ies" becomes "y" in
// words of five letters or more, and a final "s" goes from words of four
// or more unless they end in "ss", "us" or "is" ("address", "status",
// "this"). It is crude ("does" becomes "doe"), but it is applied to the
// FAQ and to the customer alike, so a wrong cut only makes two words
// alike that were already spelt nearly the same.
func singular(t string) string {
	if t[len(t)-1] != 's' {
		return t
	}
	n := utf8.RuneCountInString(t)
	if n >= 5 && strings.HasSuffix(t, "ies") {
		return t[:len(t)-3] + "y"
	}
	if n >= 4 && !strings.HasSuffix(t, "ss") &&
		!strings.HasSuffix(t, "us") && !strings.HasSuffix(t, "is") {
		return t[:len(t)-1]
	}
	return t
}

// LoadFAQ reads a FAQ file; see FAQ for its format. Problems in the file
// are reported as a *ParseError naming path.
func LoadFAQ(path string) (*FAQ, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load faq: %w", err)
	}
	f, err := ParseFAQ(data)
	if pe, ok := errors.AsType[*ParseError](err); ok {
		pe.Path = path
	}
	return f, err
}

// ParseFAQ reads a FAQ from YAML; see FAQ for the format. Every problem
// found, with its line and column, is reported in one *ParseError.
func ParseFAQ(data []byte) (*FAQ, error) {
	p := &faqParser{}
	root := p.document(data)
	var f *FAQ
	if root != nil {
		f = p.file(root)
	}
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return nil, &ParseError{Problems: p.problems}
	}
	f.build()
	return f, nil
}

// ParseError lists the problems of a FAQ file.
type ParseError struct {
	// Path is the file's path, when it was loaded from one.
	Path string
	// Problems are in the order of the file.
	Problems []Problem
}

// Problem is one mistake in a FAQ file.
type Problem struct {
	// Line and Column are 1-based; Column is 0 when unknown.
	Line, Column int
	// Message says what is wrong.
	Message string
}

// String formats p as "line:column: message".
func (p Problem) String() string {
	if p.Column == 0 {
		return fmt.Sprintf("%d: %s", p.Line, p.Message)
	}
	return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message)
}

// Error returns one line per problem, each "path:line:column: message"
// ("faq:line:column: message" without a path).
func (e *ParseError) Error() string {
	path := e.Path
	if path == "" {
		path = "faq"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = path + ":" + p.String()
	}
	return strings.Join(lines, "\n")
}

type faqParser struct {
	problems  []Problem
	phrasings []phrasingAt // every valid question and alternative
}

// phrasingAt is a question or alternative with where it was written.
type phrasingAt struct {
	entry int // index in FAQ.entries
	text  string
	node  *yaml.Node
}

func (p *faqParser) errorf(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)})
}

// document parses data into the root node of its only YAML document.
func (p *faqParser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decode(dec, &doc); err != nil {
		if err == io.EOF {
			p.problems = append(p.problems, Problem{Line: 1, Column: 1, Message: "the file is empty; want a mapping with entries"})
		} else {
			p.syntax(err)
		}
		return nil
	}
	var more yaml.Node
	switch err := decode(dec, &more); {
	case err == io.EOF:
	case err != nil:
		p.syntax(err)
		return nil
	default:
		p.errorf(&more, "a FAQ file holds one YAML document; remove the second")
	}
	if len(doc.Content) == 0 {
		p.problems = append(p.problems, Problem{Line: 1, Column: 1, Message: "the file is empty; want a mapping with entries"})
		return nil
	}
	return doc.Content[0]
}

// decode is dec.Decode turning a panic of the YAML library into an error,
// so that no FAQ file can bring the daemon down.
func decode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

// syntax records a YAML syntax error, whose line yaml.v3 only gives inside
// its message ("yaml: line 7: ...").
func (p *faqParser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, after, _ := strings.Cut(rest, ": ")
		if n, e := strconv.Atoi(num); e == nil {
			line, msg = n, after
		}
	}
	p.problems = append(p.problems, Problem{Line: line, Message: "invalid YAML: " + msg})
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a scalar"
	}
	return "an alias"
}

// pairs returns the keys and values of mapping n, reporting repeated and
// unknown keys and keys that are not plain names. Its second result holds
// the known keys that were written, misspelt ones included, so that a
// misspelt key is not also reported missing.
func (p *faqParser) pairs(n *yaml.Node, what string, known ...string) ([][2]*yaml.Node, map[string]bool) {
	written := map[string]bool{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return nil, written
	}
	seen := map[string]int{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode || isNull(k):
			p.errorf(k, "%s: keys must be plain names", what)
		case k.Value == "<<":
			p.errorf(k, "%s: merge keys (<<) are not supported; repeat the keys", what)
		case !slices.Contains(known, k.Value):
			near := nearest(k.Value, known)
			if near == "" {
				p.errorf(k, "%s: unknown key %q; known keys: %s", what, k.Value, strings.Join(known, ", "))
			} else {
				p.errorf(k, "%s: unknown key %q (did you mean %q?)", what, k.Value, near)
				written[near] = true
			}
		case seen[k.Value] != 0:
			p.errorf(k, "%s: key %q repeated (first at line %d)", what, k.Value, seen[k.Value])
		case v == nil || v.Kind == yaml.AliasNode:
			p.errorf(k, "%s: %s: alias too deep", what, k.Value)
		default:
			seen[k.Value] = k.Line
			written[k.Value] = true
			out = append(out, [2]*yaml.Node{k, v})
		}
	}
	return out, written
}

// text returns a non-blank string scalar.
func (p *faqParser) text(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, "%s must not be empty", what)
		return "", false
	}
	return n.Value, true
}

// file reads the top-level mapping.
func (p *faqParser) file(root *yaml.Node) *FAQ {
	root = resolve(root)
	f := &FAQ{fallback: DefaultFallback, floor: DefaultMinConfidence}
	var entries *yaml.Node
	kvs, written := p.pairs(root, "faq", "entries", "fallback", "min_confidence")
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "entries":
			entries = v
		case "fallback":
			if s, ok := p.text(v, "fallback"); ok {
				f.fallback = s
			}
		case "min_confidence":
			f.floor = p.fraction(v, "min_confidence")
		}
	}
	if root.Kind != yaml.MappingNode {
		return f
	}
	if entries == nil {
		if !written["entries"] {
			p.errorf(root, "faq: missing entries")
		}
		return f
	}
	if entries.Kind != yaml.SequenceNode {
		p.errorf(entries, "entries must be a list, not %s", kindName(entries))
		return f
	}
	if len(entries.Content) == 0 {
		p.errorf(entries, "entries must hold at least one entry")
		return f
	}
	for i, n := range entries.Content {
		if e, ok := p.entry(resolve(n), i+1, len(f.entries)); ok {
			f.entries = append(f.entries, e)
		}
	}
	p.distinct()
	return f
}

// fraction reads a number in 0..1.
func (p *faqParser) fraction(n *yaml.Node, what string) float64 {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err == nil && v >= 0 && v <= 1 {
			return v
		}
	}
	p.errorf(n, "%s must be a number from 0 to 1, not %s", what, describe(n))
	return DefaultMinConfidence
}

// describe names a node's value for a message.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

// entry reads the i-th (1-based) entry of the file, which becomes
// FAQ.entries[index] if it has no problem.
func (p *faqParser) entry(n *yaml.Node, i, index int) (Entry, bool) {
	what := fmt.Sprintf("entry %d", i)
	if n == nil {
		return Entry{}, false
	}
	before, phrasings := len(p.problems), len(p.phrasings)
	e := Entry{Line: n.Line}
	kvs, has := p.pairs(n, what, "question", "alternatives", "answer", "topic", "resolves")
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		field := what + " " + k.Value
		switch k.Value {
		case "question":
			if s, ok := p.phrasing(v, field, index); ok {
				e.Question = s
			}
		case "alternatives":
			if isNull(v) {
				continue // "alternatives:" with nothing after it: none
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "%s must be a list, not %s", field, kindName(v))
				continue
			}
			for _, a := range v.Content {
				if s, ok := p.phrasing(resolve(a), field+" entry", index); ok {
					e.Alternatives = append(e.Alternatives, s)
				}
			}
		case "answer":
			e.Answer, _ = p.text(v, field)
		case "topic":
			if v.Kind != yaml.ScalarNode || isNull(v) {
				p.errorf(v, "%s must be a string, not %s", field, kindName(v))
				continue
			}
			e.Topic = v.Value
		case "resolves":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&e.Resolves) != nil {
				p.errorf(v, "%s must be true or false, not %s", field, describe(v))
			}
		}
	}
	if n.Kind == yaml.MappingNode {
		for _, k := range []string{"question", "answer"} {
			if !has[k] {
				p.errorf(n, "%s: missing %s", what, k)
			}
		}
	}
	if len(p.problems) > before {
		p.phrasings = p.phrasings[:phrasings]
		return Entry{}, false
	}
	return e, true
}

// phrasing reads a question or alternative of the entry that will be
// FAQ.entries[index]; it must hold a word.
func (p *faqParser) phrasing(n *yaml.Node, what string, index int) (string, bool) {
	s, ok := p.text(n, what)
	if !ok {
		return "", false
	}
	if len(textmatch.Tokens(s)) == 0 {
		p.errorf(n, "%s %q has no words to match", what, s)
		return "", false
	}
	p.phrasings = append(p.phrasings, phrasingAt{entry: index, text: s, node: n})
	return s, true
}

// distinct reports a phrasing of one entry that has the same words, in
// the same proportions, as a phrasing of an earlier entry: the two would
// always score the same, and the later could never answer.
func (p *faqParser) distinct() {
	seen := map[string]phrasingAt{}
	for _, ph := range p.phrasings {
		key := direction(ph.text)
		if first, ok := seen[key]; ok {
			if first.entry != ph.entry {
				p.errorf(ph.node, "%q has the same words as %q at line %d, in another entry, which always wins; keep the phrasing in one entry",
					ph.text, first.text, first.node.Line)
			}
			continue
		}
		seen[key] = ph
	}
}

// direction keys a text by the direction of its word-count vector: its
// words, sorted, with their counts divided by their greatest common
// divisor. Texts with the same key have cosine 1.
func direction(s string) string {
	terms, counts := bag(s)
	g := 0
	for _, c := range counts {
		g = gcd(g, c)
	}
	var b strings.Builder
	for i, t := range terms {
		fmt.Fprintf(&b, "%s\x00%d\x00", t, counts[i]/g)
	}
	return b.String()
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// nearest returns the known key within two edits of an unknown one, or "".
func nearest(key string, known []string) string {
	best, dist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < dist {
			best, dist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// build computes the idf of every word and the unit vector of every
// phrasing, kept as an inverted index.
func (f *FAQ) build() {
	n := float64(len(f.entries))
	df := map[string]int{}
	type vec struct {
		terms  []string
		counts []int
	}
	var vecs []vec
	for i, e := range f.entries {
		inEntry := map[string]bool{}
		for _, s := range append([]string{e.Question}, e.Alternatives...) {
			terms, counts := bag(s)
			vecs = append(vecs, vec{terms, counts})
			f.phrasings = append(f.phrasings, i)
			for _, t := range terms {
				inEntry[t] = true
			}
		}
		for t := range inEntry {
			df[t]++
		}
	}
	f.idf = make(map[string]float64, len(df))
	for t, d := range df {
		f.idf[t] = math.Log((n + 1) / (float64(d) + 0.5))
	}
	f.unknown = math.Log((n + 1) / 0.5)
	f.index = map[string][]post{}
	for p, v := range vecs {
		var norm float64
		w := make([]float64, len(v.terms))
		for i, t := range v.terms {
			w[i] = float64(v.counts[i]) * f.idf[t]
			norm += w[i] * w[i]
		}
		norm = math.Sqrt(norm)
		for i, t := range v.terms {
			f.index[t] = append(f.index[t], post{phrasing: p, weight: w[i] / norm})
		}
	}
}
