package rules_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/triage-dev/triage/rules"
)

func TestParseTemplate(t *testing.T) {
	type P = rules.TemplatePart
	tests := []struct {
		name    string
		in      string
		want    []P
		wantErr string
		errAt   int
	}{
		{name: "empty", in: "", want: nil},
		{name: "literal only", in: "Hello there", want: []P{{Text: "Hello there"}}},
		{name: "one segment", in: "{{ x }}", want: []P{{Expr: " x ", Offset: 2}}},
		{name: "segment without spaces", in: "{{x}}", want: []P{{Expr: "x", Offset: 2}}},
		{
			name: "several segments",
			in:   "a {{ x }} b {{ y }}",
			want: []P{{Text: "a "}, {Expr: " x ", Offset: 4}, {Text: " b "}, {Expr: " y ", Offset: 14}},
		},
		{
			name: "adjacent segments",
			in:   "{{a}}{{b}}.",
			want: []P{{Expr: "a", Offset: 2}, {Expr: "b", Offset: 7}, {Text: "."}},
		},
		{name: "closing braces in a double-quoted string", in: `{{ "}}" }}`, want: []P{{Expr: ` "}}" `, Offset: 2}}},
		{name: "closing braces in a single-quoted string", in: `x{{ '}}' }}y`, want: []P{{Text: "x"}, {Expr: ` '}}' `, Offset: 3}, {Text: "y"}}},
		{name: "closing braces in a backquoted string", in: "{{ `}}\\` }}", want: []P{{Expr: " `}}\\` ", Offset: 2}}},
		{name: "escaped quote in a string", in: `{{ "a\"}}" }}!`, want: []P{{Expr: ` "a\"}}" `, Offset: 2}, {Text: "!"}}},
		{name: "other quote inside a string", in: `{{ "it's" }}`, want: []P{{Expr: ` "it's" `, Offset: 2}}},
		{name: "closing braces alone are text", in: "a }} b", want: []P{{Text: "a }} b"}}},
		{name: "closing braces before a segment", in: "}} {{ b }}", want: []P{{Text: "}} "}, {Expr: " b ", Offset: 5}}},
		{name: "single braces are text", in: "{ a } {b}", want: []P{{Text: "{ a } {b}"}}},
		{name: "map literal inside", in: "{{ {a: 1}.a }}", want: []P{{Expr: " {a: 1}.a ", Offset: 2}}},
		{name: "three opening braces", in: "{{{ x }}}", want: []P{{Expr: "{ x ", Offset: 2}, {Text: "}"}}},
		{
			name: "multibyte text before a segment",
			in:   "héllo — {{ x }} ✓ {{ y }}",
			want: []P{{Text: "héllo — "}, {Expr: " x ", Offset: 10}, {Text: " ✓ "}, {Expr: " y ", Offset: 20}},
		},
		{name: "multibyte inside a segment", in: `{{ "ü" }}{{ z }}`, want: []P{{Expr: ` "ü" `, Offset: 2}, {Expr: " z ", Offset: 11}}},
		{name: "unclosed", in: "a {{ x", wantErr: "unclosed {{: every {{ needs a }} (at character 3)", errAt: 2},
		{name: "unclosed after a segment", in: "{{ x }} and {{ y } }", wantErr: "unclosed {{: every {{ needs a }} (at character 13)", errAt: 12},
		{name: "unclosed string", in: `{{ "}} `, wantErr: "unclosed {{: every {{ needs a }} (at character 1)", errAt: 0},
		{name: "unclosed after multibyte", in: "ünï {{", wantErr: "unclosed {{: every {{ needs a }} (at character 5)", errAt: 4},
		{name: "empty segment", in: "x {{ }}", wantErr: "empty {{ }} (at character 3)", errAt: 2},
		{name: "empty segment without spaces", in: "{{}}", wantErr: "empty {{ }} (at character 1)", errAt: 0},
		{name: "blank segment", in: "ok {{x}} {{ \t\n }}", wantErr: "empty {{ }} (at character 10)", errAt: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rules.ParseTemplate(tt.in)
			if tt.wantErr != "" {
				var te *rules.TemplateError
				if !errors.As(err, &te) {
					t.Fatalf("ParseTemplate(%q) = %#v, %v; want a *TemplateError", tt.in, got, err)
				}
				if err.Error() != tt.wantErr || te.Offset != tt.errAt {
					t.Errorf("ParseTemplate(%q) error = %q at %d, want %q at %d", tt.in, err, te.Offset, tt.wantErr, tt.errAt)
				}
				if got != nil {
					t.Errorf("ParseTemplate(%q) returned parts with an error: %#v", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTemplate(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseTemplate: no panic; a parse re-joins to its input with every
// offset where its expression starts; an error points at a {{.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{ x }}", "a {{ b }} c {{ d }}", `{{ "}}" }}`, "{{ '}}' }}", "{{ `}}` }}",
		"a {{ b", "{{ }}", "}}", "{{{ x }}}", "héllo — {{ x }}", `{{ "\"}}" }}`, "{{ '\\' }}",
		`{{ assignee.id != "" ? assignee.first_name : "a teammate" }}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := rules.ParseTemplate(s)
		if err != nil {
			var te *rules.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v is not a *TemplateError", err, err)
			}
			r := []rune(s)
			if te.Offset < 0 || te.Offset+2 > len(r) || string(r[te.Offset:te.Offset+2]) != "{{" {
				t.Fatalf("error %v does not point at a {{ in %q", err, s)
			}
			return
		}
		var b strings.Builder
		for i, p := range parts {
			if p.Expr == "" {
				if p.Text == "" {
					t.Fatalf("part %d is empty: %#v", i, parts)
				}
				if p.Offset != 0 {
					t.Fatalf("text part %d has an offset: %#v", i, parts)
				}
				b.WriteString(p.Text)
				continue
			}
			if p.Text != "" {
				t.Fatalf("part %d is both text and expression: %#v", i, p)
			}
			if strings.TrimSpace(p.Expr) == "" {
				t.Fatalf("part %d is a blank expression", i)
			}
			b.WriteString("{{")
			if got := utf8.RuneCountInString(b.String()); p.Offset != got {
				t.Fatalf("part %d offset %d, want %d", i, p.Offset, got)
			}
			b.WriteString(p.Expr)
			b.WriteString("}}")
		}
		if b.String() != s {
			t.Fatalf("parts re-join to %q, want %q", b.String(), s)
		}
	})
}
