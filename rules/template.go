package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
)

// TemplatePart is a piece of a parsed template: literal text, or an
// expression from a {{ }} segment.
type TemplatePart struct {
	Text   string // literal text, when Expr is empty
	Expr   string // the expression between {{ and }}
	Offset int    // rune offset of Expr within the template
}

// TemplateError is a malformed template, at a rune offset.
type TemplateError struct {
	Offset int
	Msg    string
}

func (e *TemplateError) Error() string { return fmt.Sprintf("%s (at character %d)", e.Msg, e.Offset+1) }

// ParseTemplate splits s into literal text and {{ expr }} segments. A }}
// inside a quoted string within a segment does not close it, so
// {{ "}}" }} renders "}}"; a }} outside any segment is literal text.
func ParseTemplate(s string) ([]TemplatePart, error) {
	var parts []TemplatePart
	i := 0
	for i < len(s) {
		j := strings.Index(s[i:], "{{")
		if j < 0 {
			parts = append(parts, TemplatePart{Text: s[i:]})
			break
		}
		if j > 0 {
			parts = append(parts, TemplatePart{Text: s[i : i+j]})
		}
		open := i + j
		start := open + 2
		end := closing(s, start)
		if end < 0 {
			return nil, &TemplateError{Offset: utf8.RuneCountInString(s[:open]), Msg: "unclosed {{: every {{ needs a }}"}
		}
		e := s[start:end]
		if strings.TrimSpace(e) == "" {
			return nil, &TemplateError{Offset: utf8.RuneCountInString(s[:open]), Msg: "empty {{ }}"}
		}
		parts = append(parts, TemplatePart{Expr: e, Offset: utf8.RuneCountInString(s[:start])})
		i = end + 2
	}
	return parts, nil
}

// closing returns the byte index of the }} that ends a segment starting at
// i, skipping quoted strings, or -1.
func closing(s string, i int) int {
	var quote byte
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// template is a compiled template: literal parts and programs.
type template struct {
	source string
	parts  []tpart
}

type tpart struct {
	text string
	prog *vm.Program
}

func (t *template) render(env *Env) (string, error) {
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].text, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := env.run(p.prog)
		if err != nil {
			return "", fmt.Errorf("template %q: %w", t.source, err)
		}
		b.WriteString(format(v))
	}
	return b.String(), nil
}

// format prints a template value the way a person reads it: whole floats
// without a fraction, times in RFC 3339, lists comma-separated.
func format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case time.Time:
		return v.Format(time.RFC3339)
	case []string:
		return strings.Join(v, ", ")
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = format(e)
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprint(v)
}
