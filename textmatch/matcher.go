package textmatch

// node is one state of the phrase trie. Its edges are whole tokens, so a
// phrase can only match on token boundaries and "now" never matches inside
// "know".
type node struct {
	next map[string]*node
	// ids holds, without duplicates, the lists that have a phrase ending
	// here.
	ids []int32
}

// Matcher finds, in one pass over a text's tokens, which of many phrase
// lists occur in it. It is immutable after Build and safe for concurrent
// use.
type Matcher struct {
	root  node
	lists int
}

// Builder collects phrase lists for a Matcher.
type Builder struct {
	lists [][][]string // list -> phrase -> tokens
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{}
}

// Add registers a list of phrases and returns its id; ids are 0, 1, 2, ...
// in call order so callers can index their own tables by them. Each phrase
// is tokenised with Tokens. A phrase with no tokens is ignored rather than
// treated as matching everything: rejecting empty entries is the caller's
// job, and a silent match-all would be the worse failure.
func (b *Builder) Add(phrases []string) int {
	list := make([][]string, 0, len(phrases))
	for _, p := range phrases {
		if toks := Tokens(p); len(toks) > 0 {
			list = append(list, toks)
		}
	}
	b.lists = append(b.lists, list)
	return len(b.lists) - 1
}

// Build returns a Matcher for the lists added so far. The Builder may be
// used again afterwards; the Matcher shares nothing mutable with it.
func (b *Builder) Build() *Matcher {
	m := &Matcher{lists: len(b.lists)}
	for id, list := range b.lists {
		for _, phrase := range list {
			n := &m.root
			for _, tok := range phrase {
				child := n.next[tok]
				if child == nil {
					if n.next == nil {
						n.next = make(map[string]*node)
					}
					child = &node{}
					n.next[tok] = child
				}
				n = child
			}
			// Lists are added in id order, so a duplicate phrase in one list
			// can only be the last id recorded.
			if k := len(n.ids); k == 0 || n.ids[k-1] != int32(id) {
				n.ids = append(n.ids, int32(id))
			}
		}
	}
	return m
}

// Len is the number of lists.
func (m *Matcher) Len() int {
	return m.lists
}

// Match sets in hits every list with at least one phrase occurring in tokens
// as a contiguous token sequence. tokens must come from Tokens (or
// AppendTokens), since phrases were normalised the same way. hits is Reset
// first, so it can be reused across calls without allocation.
func (m *Matcher) Match(tokens []string, hits *Hits) {
	hits.Reset(m.lists)
	for i := range tokens {
		n := &m.root
		for _, tok := range tokens[i:] {
			if n = n.next[tok]; n == nil {
				break
			}
			for _, id := range n.ids {
				hits.set(int(id))
			}
		}
	}
}

// MatchText is Tokens followed by Match, for one-off use.
func (m *Matcher) MatchText(text string, hits *Hits) {
	// A stack buffer covers typical messages without growing a slice
	// token by token.
	var buf [64]string
	m.Match(AppendTokens(buf[:0], text), hits)
}

// ContainsAny reports whether any phrase occurs in text as a whole word or
// phrase. It is the slow path for a list known only at run time: nothing is
// cached, and it may allocate.
func ContainsAny(text string, phrases []string) bool {
	var toks []string
	for _, p := range phrases {
		pt := Tokens(p)
		if len(pt) == 0 {
			continue
		}
		if toks == nil {
			// Tokenising lazily keeps a list of only empty phrases from
			// paying for the text.
			toks = Tokens(text)
		}
		if containsSeq(toks, pt) {
			return true
		}
	}
	return false
}

// containsSeq reports whether sub occurs in s as a contiguous run. It is
// deliberately naive so that it can serve as an independent reference for
// the trie in tests.
func containsSeq(s, sub []string) bool {
outer:
	for i := 0; i+len(sub) <= len(s); i++ {
		for j, t := range sub {
			if s[i+j] != t {
				continue outer
			}
		}
		return true
	}
	return false
}

// Hits is a set of list ids. The zero value is empty.
type Hits struct {
	bits []uint64
}

// Has reports whether id is in the set; ids out of range are never in it.
func (h *Hits) Has(id int) bool {
	if id < 0 || id/64 >= len(h.bits) {
		return false
	}
	return h.bits[id/64]&(1<<(uint(id)%64)) != 0
}

// Reset empties the set and sizes it for n lists, keeping its memory when
// large enough so that matching in a loop does not allocate.
func (h *Hits) Reset(n int) {
	words := (n + 63) / 64
	if cap(h.bits) < words {
		h.bits = make([]uint64, words)
		return
	}
	h.bits = h.bits[:words]
	clear(h.bits)
}

func (h *Hits) set(id int) {
	h.bits[id/64] |= 1 << (uint(id) % 64)
}
