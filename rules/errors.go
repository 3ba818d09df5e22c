package rules

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a rule file: the path as given to Load joined with
// the file's path inside the directory, a 1-based line and a 1-based column
// counted in characters.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Severity says whether a problem stops a rule set from loading.
type Severity int

// Error is fatal; Warning is what is probably a mistake but still loads.
const (
	SeverityError Severity = iota
	SeverityWarning
)

// Error is one problem in a rule directory, at its position.
type Error struct {
	Pos      Pos
	Msg      string
	Severity Severity
}

func (e Error) Error() string {
	if e.Severity == SeverityWarning {
		return fmt.Sprintf("%s: warning: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// Errors is every problem found while loading, in file order. Load returns
// it as its error when at least one problem is fatal.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Fatal reports whether any problem is an error rather than a warning.
func (es Errors) Fatal() bool {
	for _, e := range es {
		if e.Severity == SeverityError {
			return true
		}
	}
	return false
}

func (es Errors) sorted(order map[string]int) Errors {
	out := append(Errors(nil), es...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if a.File != b.File {
			oa, oka := order[a.File]
			ob, okb := order[b.File]
			if oka && okb {
				return oa < ob
			}
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return out
}

// collector gathers problems so one run reports them all.
type collector struct {
	errs Errors
}

func (c *collector) errorf(p Pos, format string, args ...any) {
	c.errs = append(c.errs, Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(p Pos, format string, args ...any) {
	c.errs = append(c.errs, Error{Pos: p, Msg: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}
