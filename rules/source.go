package rules

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// source is one rule file's bytes, kept so positions inside a scalar (an
// expression's error, a template segment) can be mapped back to the file.
type source struct {
	path  string // as printed in positions
	rel   string // relative to the rule directory, slash-separated
	data  []byte
	lines []int // byte offset of each line's start
}

func newSource(path, rel string, data []byte) *source {
	s := &source{path: path, rel: rel, data: data, lines: []int{0}}
	for i, b := range data {
		if b == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

func (s *source) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: s.path}
	}
	return Pos{File: s.path, Line: n.Line, Col: n.Column}
}

// offset returns the byte offset of a 1-based line and character column.
func (s *source) offset(line, col int) int {
	if line < 1 || line > len(s.lines) {
		return len(s.data)
	}
	off := s.lines[line-1]
	for c := 1; c < col && off < len(s.data); c++ {
		if s.data[off] == '\n' {
			break
		}
		_, size := utf8.DecodeRune(s.data[off:])
		off += size
	}
	return off
}

// posAt returns the position of a byte offset.
func (s *source) posAt(off int) Pos {
	line := 1
	for line < len(s.lines) && s.lines[line] <= off {
		line++
	}
	col := 1 + utf8.RuneCount(s.data[s.lines[line-1]:min(off, len(s.data))])
	return Pos{File: s.path, Line: line, Col: col}
}

// within maps a rune offset inside a scalar's value to a file position.
//
// YAML may fold, quote, escape and indent a scalar, so the value's offsets
// do not map to the file's by arithmetic. What survives every style is the
// sequence of non-blank characters, so the n-th non-blank character of the
// value is found as the n-th non-blank character after the scalar starts,
// an escape in a quoted scalar counting as the one character it stands for.
func (s *source) within(n *yaml.Node, runeOff int) Pos {
	if n == nil || n.Line == 0 {
		return s.pos(n)
	}
	// Count non-blank runes of the value before runeOff.
	want, i := 0, 0
	for _, r := range n.Value {
		if i >= runeOff {
			break
		}
		if !unicode.IsSpace(r) {
			want++
		}
		i++
	}
	off := s.offset(n.Line, n.Column)
	// Step over the node's properties, an anchor (&a) and a tag (!!str): no
	// scalar starts with & or !.
	for off < len(s.data) && (s.data[off] == '&' || s.data[off] == '!') {
		for off < len(s.data) && !isBlankByte(s.data[off]) {
			off++
		}
		for off < len(s.data) && isBlankByte(s.data[off]) {
			off++
		}
	}
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		off++
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		for off < len(s.data) && s.data[off] != '\n' {
			off++
		}
	}
	// Skip to the want-th non-blank character, then past any blanks to the
	// next.
	seen := 0
	for off < len(s.data) {
		blank, size := s.char(n.Style, off)
		if !blank {
			if seen == want {
				break
			}
			seen++
		}
		off += size
	}
	return s.posAt(off)
}

// char reads the scalar character written at byte offset off: whether it is
// blank in the value, and how many bytes it takes in the file. In a quoted
// scalar an escape (\" \t \u00e9) or a doubled single quote is one
// character of the value however many the file spends on it, and an escaped
// line break is none.
func (s *source) char(style yaml.Style, off int) (blank bool, size int) {
	r, size := utf8.DecodeRune(s.data[off:])
	rest := len(s.data) - off
	switch {
	case style&yaml.DoubleQuotedStyle != 0 && r == '\\' && rest > 1:
		e, esize := utf8.DecodeRune(s.data[off+1:])
		size = 1 + esize
		digits := 0
		switch e {
		case '\r':
			if rest > 2 && s.data[off+2] == '\n' {
				size++
			}
			return true, size
		case '\n', '\t', ' ', 't', 'n', 'r', 'v', 'f', 'N', '_', 'L', 'P':
			return true, size
		case 'x':
			digits = 2
		case 'u':
			digits = 4
		case 'U':
			digits = 8
		default:
			return false, size
		}
		if rest < 2+digits {
			return false, rest
		}
		v, err := strconv.ParseUint(string(s.data[off+2:off+2+digits]), 16, 32)
		return err == nil && unicode.IsSpace(rune(v)), 2 + digits
	case style&yaml.SingleQuotedStyle != 0 && r == '\'' && rest > 1 && s.data[off+1] == '\'':
		return false, 2
	}
	return unicode.IsSpace(r), size
}

func isBlankByte(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
