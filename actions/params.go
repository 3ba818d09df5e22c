package actions

import (
	"fmt"
	"sort"
	"strings"
)

// Dynamic stands for a string parameter that holds {{ }} template segments:
// its value is only known when the action fires, so constructors validate
// what they can now and Apply checks the rendered value.
type Dynamic struct {
	Source string
}

// ParamError is a problem with one parameter. The loader turns Key into
// the position of that parameter in the rule file.
type ParamError struct {
	Key string // the parameter's name; empty for the action as a whole
	Msg string
}

func (e *ParamError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// Params gives a constructor typed access to an action's raw parameters and
// remembers which it read, so unknown keys can be reported.
type Params struct {
	m    map[string]any
	used map[string]bool
}

// NewParams wraps raw parameters: values are string, Dynamic, int, float64,
// bool, nil, []any or map[string]any, as decoded from YAML.
func NewParams(m map[string]any) *Params {
	if m == nil {
		m = map[string]any{}
	}
	return &Params{m: m, used: map[string]bool{}}
}

// Has reports whether key is present.
func (p *Params) Has(key string) bool {
	_, ok := p.m[key]
	return ok
}

// String reads a string parameter. dynamic is true when it is a template,
// in which case s is its source.
func (p *Params) String(key string, required bool) (s string, dynamic bool, err error) {
	p.used[key] = true
	v, ok := p.m[key]
	if !ok || v == nil {
		if required {
			return "", false, &ParamError{Key: key, Msg: "is required"}
		}
		return "", false, nil
	}
	switch v := v.(type) {
	case string:
		if required && strings.TrimSpace(v) == "" {
			return "", false, &ParamError{Key: key, Msg: "must not be empty"}
		}
		return v, false, nil
	case Dynamic:
		return v.Source, true, nil
	default:
		return "", false, &ParamError{Key: key, Msg: fmt.Sprintf("must be a string, not %s", kind(v))}
	}
}

// Enum reads a string parameter that must be one of allowed, unless it is a
// template.
func (p *Params) Enum(key string, required bool, allowed []string) (string, error) {
	s, dynamic, err := p.String(key, required)
	if err != nil || dynamic || s == "" {
		return s, err
	}
	if err := oneOf(s, allowed); err != nil {
		return "", &ParamError{Key: key, Msg: err.Error()}
	}
	return s, nil
}

// Int reads an integer parameter; ok is false when it is absent.
func (p *Params) Int(key string) (n int, ok bool, err error) {
	p.used[key] = true
	v, present := p.m[key]
	if !present || v == nil {
		return 0, false, nil
	}
	switch v := v.(type) {
	case int:
		return v, true, nil
	case float64:
		if v == float64(int(v)) {
			return int(v), true, nil
		}
	}
	return 0, false, &ParamError{Key: key, Msg: fmt.Sprintf("must be an integer, not %s", kind(v))}
}

// Strings reads a list of strings; a single string is taken as a list of
// one. Templates are allowed as entries.
func (p *Params) Strings(key string) ([]any, error) {
	p.used[key] = true
	v, ok := p.m[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch v := v.(type) {
	case string, Dynamic:
		return []any{v}, nil
	case []any:
		for i, e := range v {
			switch e := e.(type) {
			case string:
				if e == "" {
					return nil, &ParamError{Key: key, Msg: fmt.Sprintf("entry %d must not be empty", i+1)}
				}
			case Dynamic:
			default:
				return nil, &ParamError{Key: key, Msg: fmt.Sprintf("entry %d must be a string, not %s", i+1, kind(e))}
			}
		}
		return v, nil
	}
	return nil, &ParamError{Key: key, Msg: fmt.Sprintf("must be a list of strings, not %s", kind(v))}
}

// Unknown returns the keys no accessor asked for, sorted.
func (p *Params) Unknown() []string {
	var out []string
	for k := range p.m {
		if !p.used[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// CheckUnknown returns a ParamError for the first unknown key, naming the
// keys the action accepts.
func (p *Params) CheckUnknown() error {
	unknown := p.Unknown()
	if len(unknown) == 0 {
		return nil
	}
	known := make([]string, 0, len(p.used))
	for k := range p.used {
		known = append(known, k)
	}
	sort.Strings(known)
	msg := "unknown parameter"
	if len(known) > 0 {
		msg += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
	} else {
		msg += " (this action takes none)"
	}
	return &ParamError{Key: unknown[0], Msg: msg}
}

func oneOf(s string, allowed []string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
}

func kind(v any) string {
	switch v.(type) {
	case string, Dynamic:
		return "a string"
	case int, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// str reads a rendered string param at fire time.
func str(params map[string]any, key string) string {
	s, _ := params[key].(string)
	return s
}

// strs reads a rendered list of strings at fire time.
func strs(params map[string]any, key string) []string {
	switch v := params[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}
