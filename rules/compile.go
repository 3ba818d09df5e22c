package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/textmatch"
)

// kwName is the hidden environment entry holding, for the event's text,
// whether each keyword list hit. contains_any(event.text, lists.x) is
// rewritten to read it.
const kwName = "__kw"

// envNames are the top-level names of the expression environment.
var envNames = []string{"event", "conversation", "contact", "assignee", "eta_minutes", "params", "lists", "now"}

// funcNames are the functions triage adds to expr's built-ins.
var funcNames = []string{"contains_any", "contains_word", "matches", "minutes_since", "hours_since", "in_business_hours"}

type macro struct {
	name string
	pos  Pos
	node *yaml.Node
	src  *source
	text string
	deps []string
	bad  bool // has errors of its own, or is part of a cycle
}

type regexpEntry struct {
	re *regexp.Regexp
}

type compiler struct {
	c        *collector
	reg      *actions.Registry
	set      *Set
	macros   map[string]*macro
	builder  *textmatch.Builder
	listIDs  map[string]int
	litIDs   map[string]int
	reIDs    map[string]int
	used     map[string]bool
	baseOpts []expr.Option
	typeInfo map[string]typeInfo
	dynTeam  bool
	assigned map[string]bool
	kwUses   int // keyword rewrites so far, to learn which rules read hits
}

// typeInfo names a Go type of the environment the way a rule author knows
// it, so checker messages can say "conversation has no field x".
type typeInfo struct {
	name   string
	fields []string
	types  []string // the names the checker gives the type
}

func newCompiler(c *collector, reg *actions.Registry) *compiler {
	return &compiler{
		c: c, reg: reg,
		set: &Set{
			params: map[string]any{}, lists: map[string][]string{},
			teams: map[string]*Team{}, agents: map[string]*Agent{},
			byType: map[string][]*Rule{}, kwTypes: map[string]bool{}, defaultETA: 5,
			calendars: map[string]*Calendar{},
		},
		macros:   map[string]*macro{},
		builder:  textmatch.NewBuilder(),
		listIDs:  map[string]int{},
		litIDs:   map[string]int{},
		reIDs:    map[string]int{},
		used:     map[string]bool{},
		assigned: map[string]bool{},
	}
}

// definer reports a name defined twice, at both places.
type definer struct {
	c     *collector
	kind  string
	where map[string]Pos
}

func (d *definer) define(name string, p Pos) bool {
	if d.where == nil {
		d.where = map[string]Pos{}
	}
	if prev, ok := d.where[name]; ok {
		d.c.errorf(p, "%s %q defined twice (also at %s)", d.kind, name, prev)
		d.c.errorf(prev, "%s %q defined twice (also at %s)", d.kind, name, p)
		return false
	}
	d.where[name] = p
	return true
}

func (cp *compiler) build(files []*rawFile) *Set {
	s := cp.set
	params := &definer{c: cp.c, kind: "param"}
	lists := &definer{c: cp.c, kind: "list"}
	macros := &definer{c: cp.c, kind: "macro"}
	teams := &definer{c: cp.c, kind: "team"}
	agents := &definer{c: cp.c, kind: "agent"}
	rules := &definer{c: cp.c, kind: "rule"}
	calendars := &definer{c: cp.c, kind: "business_hours calendar"}
	policies := &definer{c: cp.c, kind: "SLA policy"}
	calendarNames := map[string]bool{}
	var rawPolicies []rawPolicy

	var rawRules, dupRules []rawRule
	for _, f := range files {
		for _, rc := range f.calendars {
			if !ruleNameRE.MatchString(rc.name) {
				cp.c.errorf(rc.pos, "calendar name %q must match [a-z0-9][a-z0-9_-]*", rc.name)
			}
			if !calendars.define(rc.name, rc.pos) {
				continue
			}
			calendarNames[rc.name] = true
			if c := cp.calendar(rc); c != nil {
				s.calendars[rc.name] = c
			}
		}
		for _, rp := range f.policies {
			if policies.define(rp.name, rp.namePos) {
				rawPolicies = append(rawPolicies, rp)
			}
		}
		for _, p := range f.params {
			if !cp.identName("param", p.name, p.pos) || !params.define(p.name, p.pos) {
				continue
			}
			if v, ok := cp.paramValue(p); ok {
				s.params[p.name] = v
				s.paramOrder = append(s.paramOrder, p.name)
			}
		}
		for _, l := range f.lists {
			if !cp.identName("list", l.name, l.pos) || !lists.define(l.name, l.pos) {
				continue
			}
			pp := &walker{c: cp.c, src: l.src}
			var items []string
			for _, e := range pp.strListPos(l.value, "list "+l.name) {
				if len(textmatch.Tokens(e.s)) == 0 {
					cp.c.errorf(e.pos, "list %q: %q has no letters or digits, so it can never match a whole word", l.name, e.s)
					continue
				}
				items = append(items, e.s)
			}
			if n := resolve(l.value); n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				cp.c.errorf(l.pos, "list %q is empty", l.name)
			}
			s.lists[l.name] = items
			s.listOrder = append(s.listOrder, l.name)
		}
		for _, m := range f.macros {
			if !cp.identName("macro", m.name, m.pos) || !macros.define(m.name, m.pos) {
				continue
			}
			if reserved(m.name) {
				cp.c.errorf(m.pos, "macro name %q is taken by the expression language; choose another", m.name)
				continue
			}
			n := resolve(m.value)
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
				cp.c.errorf(m.pos, "macro %q must be an expression", m.name)
				continue
			}
			if !(&walker{c: cp.c, src: m.src}).expression(n, "macro") {
				continue
			}
			cp.macros[m.name] = &macro{name: m.name, pos: m.pos, node: n, src: m.src, text: n.Value}
			s.macroOrder = append(s.macroOrder, m.name)
		}
		for _, t := range f.teams {
			if !ruleNameRE.MatchString(t.name) {
				cp.c.errorf(t.pos, "team name %q must match [a-z0-9][a-z0-9_-]*", t.name)
			}
			if !teams.define(t.name, t.pos) {
				continue
			}
			team := &Team{Name: t.name, Strategy: t.strategy, Pos: t.pos}
			for _, m := range t.members {
				if m.id == "" || !agents.define(m.id, m.pos) {
					continue
				}
				a := &Agent{ID: m.id, Name: m.name, Team: t.name, Skills: m.skills, Languages: m.languages, Capacity: m.capacity}
				if strings.TrimSpace(a.Name) == "" {
					a.Name = m.id
				}
				a.FirstName = strings.Fields(a.Name)[0]
				team.Members = append(team.Members, a)
				s.agents[m.id] = a
			}
			s.teams[t.name] = team
			s.teamOrder = append(s.teamOrder, t.name)
		}
		for _, r := range f.rules {
			if rules.define(r.name, r.namePos) {
				rawRules = append(rawRules, r)
			} else {
				dupRules = append(dupRules, r)
			}
		}
	}

	if v, ok := s.params["default_eta_minutes"]; ok {
		if n, isInt := v.(int); isInt && n >= 1 {
			s.defaultETA = n
		} else {
			cp.c.errorf(params.where["default_eta_minutes"], "param default_eta_minutes must be a whole number of minutes, 1 or more")
		}
	}

	cp.envTypes()
	cp.checkMacros()
	for _, rp := range rawPolicies {
		if pol := cp.policy(rp, calendarNames); pol != nil {
			s.policies = append(s.policies, pol)
		}
	}
	for i, r := range rawRules {
		if rule := cp.rule(r, i); rule != nil {
			s.rules = append(s.rules, rule)
		}
	}
	// A rule whose name is taken is still checked, so that renaming it
	// brings no new errors.
	for _, r := range dupRules {
		cp.rule(r, -1)
	}
	s.matcher = cp.builder.Build()
	cp.index()
	cp.warnings(params.where, lists.where)
	cp.slaWarnings()
	return s
}

func (cp *compiler) identName(kind, name string, p Pos) bool {
	if !identNameRE.MatchString(name) {
		cp.c.errorf(p, "%s name %q must match [a-z_][a-z0-9_]* to be usable in expressions", kind, name)
		return false
	}
	return true
}

func reserved(name string) bool {
	for _, n := range envNames {
		if n == name {
			return true
		}
	}
	for _, n := range funcNames {
		if n == name {
			return true
		}
	}
	for _, n := range builtin.Names {
		if n == name {
			return true
		}
	}
	switch name {
	case "true", "false", "nil", "and", "or", "not", "in", "let", "if", "else", "matches", "contains", "startsWith", "endsWith", kwName:
		return true
	}
	return false
}

func (cp *compiler) paramValue(p rawNamed) (any, bool) {
	n := resolve(p.value)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		cp.c.errorf(p.src.pos(n), "param %q must be a number, a string or true/false, not %s", p.name, kindName(n))
		return nil, false
	}
	switch n.Tag {
	case "!!int":
		v, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			cp.c.errorf(p.src.pos(n), "param %q: %v", p.name, err)
			return nil, false
		}
		return int(v), true
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			cp.c.errorf(p.src.pos(n), "param %q: %v", p.name, err)
			return nil, false
		}
		return f, true
	case "!!bool":
		var b bool
		_ = n.Decode(&b)
		return b, true
	}
	return n.Value, true
}

// envTypes builds the expression environment's types. params and lists
// become struct types made at load, so `params.confidence_treshold` is a
// load error and not a nil at run time.
func (cp *compiler) envTypes() {
	s := cp.set
	pv, pt := structOf(s.paramOrder, func(n string) any { return s.params[n] })
	lv, lt := structOf(s.listOrder, func(n string) any { return s.lists[n] })
	s.paramsValue, s.listsValue = pv, lv
	for _, name := range s.listOrder {
		cp.listIDs[name] = cp.builder.Add(s.lists[name])
	}

	cp.typeInfo = map[string]typeInfo{}
	add := func(name string, t reflect.Type) {
		ti := typeInfo{name: name}
		st := t
		for st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		for i := 0; i < st.NumField(); i++ {
			if tag := st.Field(i).Tag.Get("expr"); tag != "" && tag != "-" {
				ti.fields = append(ti.fields, tag)
			}
		}
		// The checker names a type with or without its pointer; the first
		// name registered for a type wins (contact before event.contact).
		for _, name := range []string{t.String(), st.String(), reflect.PointerTo(st).String()} {
			if _, taken := cp.typeInfo[name]; !taken {
				cp.typeInfo[name] = ti
			}
		}
		// Also by the expression path, which says which of two names of one
		// type (contact, event.contact; empty params and lists) was meant.
		ti.types = []string{st.String(), reflect.PointerTo(st).String()}
		cp.typeInfo[name] = ti
	}
	add("event", reflect.TypeOf(&EventEnv{}))
	add("conversation", reflect.TypeOf(&schemas.Conversation{}))
	add("contact", reflect.TypeOf(&schemas.Contact{}))
	add("event.contact", reflect.TypeOf(schemas.Contact{}))
	add("event.sla", reflect.TypeOf(schemas.SLAInfo{}))
	add("assignee", reflect.TypeOf(&schemas.Assignee{}))
	add("params", pt)
	add("lists", lt)

	env := map[string]any{
		"event":        &EventEnv{},
		"conversation": &schemas.Conversation{},
		"contact":      &schemas.Contact{},
		"assignee":     &schemas.Assignee{},
		"eta_minutes":  0,
		"params":       pv,
		"lists":        lv,
		"now":          time.Time{},
		kwName:         []bool{},
	}
	cp.baseOpts = append([]expr.Option{
		expr.Env(env),
		// The event clock is the only clock: the wall clock would make replay,
		// tests and serve disagree.
		expr.DisableBuiltin("now"),
	}, cp.functions()...)
}

func structOf(names []string, value func(string) any) (any, reflect.Type) {
	fields := make([]reflect.StructField, len(names))
	for i, n := range names {
		fields[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: reflect.TypeOf(value(n)),
			Tag:  reflect.StructTag(`expr:"` + n + `"`),
		}
	}
	t := reflect.StructOf(fields)
	v := reflect.New(t).Elem()
	for i, n := range names {
		v.Field(i).Set(reflect.ValueOf(value(n)))
	}
	return v.Interface(), t
}

// Hidden functions the rewriter calls; rule authors use the public names.
const (
	fnInList  = "__in_list"
	fnRegexp  = "__regexp"
	fnInHours = "__in_hours"
	fnMatchs  = "Matches" // matches( renamed before parsing: see renameMatches
)

func (cp *compiler) functions() []expr.Option {
	s := cp.set
	return []expr.Option{
		expr.Function("contains_any", func(p ...any) (any, error) {
			text, _ := p[0].(string)
			switch l := p[1].(type) {
			case []string:
				return textmatch.ContainsAny(text, l), nil
			case []any:
				words := make([]string, 0, len(l))
				for _, w := range l {
					if ws, ok := w.(string); ok {
						words = append(words, ws)
					}
				}
				return textmatch.ContainsAny(text, words), nil
			}
			return false, nil
		}, new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("contains_word", func(p ...any) (any, error) {
			return textmatch.ContainsAny(p[0].(string), []string{p[1].(string)}), nil
		}, new(func(string, string) bool)),
		expr.Function(fnMatchs, func(p ...any) (any, error) {
			re, err := regexp.Compile(p[1].(string))
			if err != nil {
				return nil, fmt.Errorf("matches: %w", err)
			}
			return re.MatchString(p[0].(string)), nil
		}, new(func(string, string) bool)),
		expr.Function(fnRegexp, func(p ...any) (any, error) {
			return s.regexps[p[1].(int)].re.MatchString(p[0].(string)), nil
		}, new(func(string, int) bool)),
		expr.Function(fnInList, func(p ...any) (any, error) {
			var hits textmatch.Hits
			s.matcher.MatchText(p[0].(string), &hits)
			return hits.Has(p[1].(int)), nil
		}, new(func(string, int) bool)),
		expr.Function("minutes_since", func(p ...any) (any, error) {
			return p[0].(time.Time).Sub(p[1].(time.Time)).Minutes(), nil
		}, new(func(time.Time, time.Time) float64)),
		expr.Function("hours_since", func(p ...any) (any, error) {
			return p[0].(time.Time).Sub(p[1].(time.Time)).Hours(), nil
		}, new(func(time.Time, time.Time) float64)),
		expr.Function("in_business_hours", func(p ...any) (any, error) {
			return nil, errCalendarName // only literal names are rewritten to __in_hours
		}, new(func(string) bool)),
		expr.Function(fnInHours, func(p ...any) (any, error) {
			return s.calendarList[p[1].(int)].Cal.Open(p[0].(time.Time)), nil
		}, new(func(time.Time, int) bool)),
	}
}

// renameMatches turns the call form matches(text, re) into Matches(...),
// same length so positions stay put, because expr reads `matches` as its
// infix operator (`text matches "re"`) and cannot parse it as a call. The
// infix form is left alone: a `matches` that follows an operand is the
// operator.
func renameMatches(src string) string {
	if !strings.Contains(src, "matches") {
		return src
	}
	b := []byte(src)
	prevOperand := false
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(b) && b[j] != c {
				if b[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
			prevOperand = true
		case isIdentStart(c):
			j := i
			for j < len(b) && isIdentPart(b[j]) {
				j++
			}
			word := string(b[i:j])
			k := j
			for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
				k++
			}
			if word == "matches" && !prevOperand && k < len(b) && b[k] == '(' && (i == 0 || b[i-1] != '.') {
				copy(b[i:j], fnMatchs)
			}
			switch word {
			case "and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith", "let", "if", "else":
				prevOperand = false
			default:
				prevOperand = true
			}
			i = j
		case c == ')' || c == ']' || c == '}' || (c >= '0' && c <= '9'):
			prevOperand = true
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			prevOperand = false
			i++
		}
	}
	return string(b)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c == '#' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// exprAt says where an expression sits: a scalar node of a file, and the
// rune offset of the expression inside the scalar's value.
type exprAt struct {
	src  *source
	node *yaml.Node
	base int
}

func (at exprAt) pos(runeOff int) Pos { return at.src.within(at.node, at.base+runeOff) }

type compiled struct {
	prog *vm.Program
	root ast.Node
}

// compile compiles one expression with macros expanded and the fast paths
// rewritten, reporting problems at their file positions.
func (cp *compiler) compile(text string, at exprAt, asBool bool) (compiled, bool) {
	exp := &expander{cp: cp}
	rw := &rewriter{cp: cp}
	opts := append(cp.baseOpts[:len(cp.baseOpts):len(cp.baseOpts)], expr.Patch(exp), expr.Patch(rw), expr.Patch(recheckCalls{}))
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(renameMatches(text), opts...)
	if exp.broken != "" {
		cp.c.errorf(at.pos(exp.brokenAt), "uses macro %q, which has errors", exp.broken)
		return compiled{}, false
	}
	ok := true
	for _, pe := range append(exp.errs, rw.errs...) {
		cp.c.errorf(at.pos(pe.off), "%s", pe.msg)
		ok = false
	}
	if err != nil {
		hint := ""
		if at.node != nil && at.node.Style == 0 && at.node.LineComment != "" {
			// In an unquoted value, " #" starts a YAML comment and the
			// expression is cut short there: a puzzling error otherwise.
			hint = fmt.Sprintf(" (YAML took %q on this line as a comment; quote the expression if it belongs to it)", at.node.LineComment)
		}
		var fe *file.Error
		if errors.As(err, &fe) {
			cp.c.errorf(at.pos(fe.From), "%s%s", cp.friendly(fe.Message, receiver(text, fe.From)), hint)
		} else {
			cp.c.errorf(at.pos(0), "%s%s", cp.friendly(err.Error(), ""), hint)
		}
		return compiled{}, false
	}
	if !ok {
		return compiled{}, false
	}
	if asBool && prog.Node().Type().Kind() == reflect.Interface {
		// AsBool lets through what the checker cannot type (event.text ??
		// true); every evaluation would then fail at run time.
		cp.c.errorf(at.pos(0), "must be true or false, but the type of this expression is only known at run time; compare it with something, like ... == true")
		return compiled{}, false
	}
	var root ast.Node
	if rw.root != nil {
		root = *rw.root
	}
	return compiled{prog: prog, root: root}, true
}

// internalNames maps the hidden functions the rewriter calls back to the
// names rule authors wrote.
var internalNames = strings.NewReplacer(fnMatchs, "matches", fnInList, "contains_any", fnRegexp, "matches", fnInHours, "in_business_hours", "[]interface {}", "list")

var (
	noFieldRE = regexp.MustCompile(`^type (.+) has no field (\S+)$`)
	noNameRE  = regexp.MustCompile(`^unknown name (\S+)$`)
)

// receiver returns the dotted path written before the field that starts
// at rune offset off of text: "event.contact" for event.contact.nmae.
func receiver(text string, off int) string {
	r := []rune(text)
	if off < 2 || off > len(r) || r[off-1] != '.' {
		return ""
	}
	end := off - 1
	start := end
	for start > 0 && (r[start-1] == '.' || r[start-1] < utf8.RuneSelf && isIdentPart(byte(r[start-1]))) {
		start--
	}
	return string(r[start:end])
}

// friendly rewrites expr's messages into the names rule authors use. recv
// is the path written before the offending field, when known.
func (cp *compiler) friendly(msg, recv string) string {
	msg = strings.TrimSpace(internalNames.Replace(msg))
	if m := noFieldRE.FindStringSubmatch(msg); m != nil {
		ti, ok := cp.typeInfo[m[1]]
		if byPath, found := cp.typeInfo[recv]; found && slices.Contains(byPath.types, m[1]) {
			ti, ok = byPath, true
		}
		if ok {
			out := fmt.Sprintf("%s has no field %s", ti.name, m[2])
			if s := suggest(m[2], ti.fields); s != "" {
				out += fmt.Sprintf(" (did you mean %s?)", s)
			} else if len(ti.fields) > 0 && len(ti.fields) <= 20 {
				out += fmt.Sprintf(" (it has: %s)", strings.Join(ti.fields, ", "))
			} else if len(ti.fields) == 0 {
				out += fmt.Sprintf(" (no %s are defined)", ti.name)
			}
			return out
		}
	}
	if m := noNameRE.FindStringSubmatch(msg); m != nil {
		names := append(append([]string{}, envNames...), funcNames...)
		for n := range cp.macros {
			names = append(names, n)
		}
		out := "unknown name " + m[1]
		if s := suggest(m[1], names); s != "" {
			out += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return out
	}
	// A struct made at load prints as struct { F0 ... }: name it.
	for t, ti := range cp.typeInfo {
		if strings.HasPrefix(t, "struct") && (ti.name == "params" || ti.name == "lists") {
			msg = strings.ReplaceAll(msg, t, ti.name)
		}
	}
	return msg
}

// suggest returns the closest candidate within a small edit distance.
func suggest(word string, candidates []string) string {
	best, bestD := "", 3
	if len(word) <= 4 {
		bestD = 2
	}
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

type patchErr struct {
	off int
	msg string
}

// expander replaces macro names with their expressions.
type expander struct {
	cp       *compiler
	stack    []string
	broken   string
	brokenAt int
	errs     []patchErr
}

func (x *expander) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	m := x.cp.macros[id.Value]
	if m == nil {
		return
	}
	x.cp.used["macro:"+m.name] = true
	if m.bad {
		if x.broken == "" {
			x.broken, x.brokenAt = m.name, id.Location().From
		}
		return
	}
	tree, err := parser.Parse(renameMatches(m.text))
	if err != nil {
		if x.broken == "" {
			x.broken, x.brokenAt = m.name, id.Location().From
		}
		return
	}
	for _, s := range x.stack {
		if s == m.name {
			return // a cycle, reported at the macro
		}
	}
	inner := &expander{cp: x.cp, stack: append(x.stack, m.name)}
	ast.Walk(&tree.Node, inner)
	if inner.broken != "" && x.broken == "" {
		x.broken, x.brokenAt = inner.broken, id.Location().From
	}
	// Errors in the expansion point at the macro's name in this expression.
	ast.Walk(&tree.Node, locSetter{id.Location()})
	*n = tree.Node
}

type locSetter struct{ loc file.Location }

// recheckCalls makes expr's final type check look inside every call again.
// With patchers, expr checks the tree before patching too, and a call whose
// type that check found is trusted without its arguments being checked
// again, so `contains_any(event.txet, lists.x)` would load and fail at run
// time. Being "repeatable" in expr's terms, it is walked after the other
// patchers, right before the final check.
type recheckCalls struct{}

func (recheckCalls) Visit(n *ast.Node) {
	if c, ok := (*n).(*ast.CallNode); ok {
		c.SetNature(nature.Nature{})
	}
}

func (recheckCalls) Reset() {}

func (recheckCalls) ShouldRepeat() bool { return false }

func (l locSetter) Visit(n *ast.Node) { (*n).SetLocation(l.loc) }

// rewriter turns calls with literal arguments into precompiled fast paths
// and records which params and lists are used.
type rewriter struct {
	cp   *compiler
	root *ast.Node
	errs []patchErr
}

func memberOf(n ast.Node, base string) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != base {
		return "", false
	}
	p, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return p.Value, true
}

func (r *rewriter) Visit(n *ast.Node) {
	r.root = n
	switch x := (*n).(type) {
	case *ast.MemberNode:
		if name, ok := memberOf(x, "params"); ok {
			r.cp.used["param:"+name] = true
			// A set's params never change (a reload builds a new set), so a
			// param is a constant: folding it saves a reflective field
			// fetch per evaluation.
			if lit := literal(r.cp.set.params[name]); lit != nil {
				lit.SetLocation(x.Location())
				*n = lit
			}
		}
		if name, ok := memberOf(x, "lists"); ok {
			r.cp.used["list:"+name] = true
		}
	case *ast.CallNode:
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		loc := x.Location()
		switch id.Value {
		case "contains_any", "contains_word":
			if len(x.Arguments) != 2 {
				return
			}
			list := r.listArg(id.Value, x.Arguments[1])
			if list < 0 {
				return
			}
			var repl ast.Node
			if f, ok := memberOf(x.Arguments[0], "event"); ok && f == "text" {
				r.cp.set.textLists = true
				r.cp.kwUses++
				repl = &ast.MemberNode{Node: &ast.IdentifierNode{Value: kwName}, Property: &ast.IntegerNode{Value: list}}
				ast.Walk(&repl, locSetter{loc})
			} else {
				repl = hiddenCall(loc, fnInList, x.Arguments[0], list)
			}
			*n = repl
		case fnMatchs:
			if len(x.Arguments) != 2 {
				return
			}
			lit, ok := x.Arguments[1].(*ast.StringNode)
			if !ok {
				return
			}
			idx, seen := r.cp.reIDs[lit.Value]
			if !seen {
				re, err := regexp.Compile(lit.Value)
				if err != nil {
					r.errs = append(r.errs, patchErr{off: lit.Location().From, msg: fmt.Sprintf("matches: invalid regular expression: %v", err)})
					return
				}
				idx = len(r.cp.set.regexps)
				r.cp.set.regexps = append(r.cp.set.regexps, regexpEntry{re: re})
				r.cp.reIDs[lit.Value] = idx
			}
			*n = hiddenCall(loc, fnRegexp, x.Arguments[0], idx)
		case "minutes_since", "hours_since":
			if len(x.Arguments) == 1 {
				now := &ast.IdentifierNode{Value: "now"}
				now.SetLocation(loc)
				x.Arguments = append([]ast.Node{now}, x.Arguments...)
			} else {
				r.errs = append(r.errs, patchErr{off: loc.From, msg: fmt.Sprintf("%s takes one argument, a time", id.Value)})
			}
		case "in_business_hours":
			lit, ok := x.Arguments[0].(*ast.StringNode)
			if len(x.Arguments) != 1 || !ok {
				r.errs = append(r.errs, patchErr{off: loc.From, msg: errCalendarName.Error()})
				return
			}
			c := r.cp.set.calendars[lit.Value]
			if c == nil {
				var names []string
				for n := range r.cp.set.calendars {
					names = append(names, n)
				}
				sort.Strings(names)
				msg := fmt.Sprintf("in_business_hours: unknown business_hours calendar %q", lit.Value)
				if sg := suggest(lit.Value, names); sg != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", sg)
				}
				r.errs = append(r.errs, patchErr{off: lit.Location().From, msg: msg})
				return
			}
			r.cp.used["calendar:"+c.Name] = true
			idx := -1
			for i, e := range r.cp.set.calendarList {
				if e == c {
					idx = i
				}
			}
			if idx < 0 {
				idx = len(r.cp.set.calendarList)
				r.cp.set.calendarList = append(r.cp.set.calendarList, c)
			}
			now := &ast.IdentifierNode{Value: "now"}
			now.SetLocation(loc)
			*n = hiddenCall(loc, fnInHours, now, idx)
		}
	}
}

// hiddenCall builds fn(arg, id) at loc. arg keeps its own location, so an
// error inside it points at it and not at the call.
func hiddenCall(loc file.Location, fn string, arg ast.Node, id int) ast.Node {
	callee := &ast.IdentifierNode{Value: fn}
	n := &ast.IntegerNode{Value: id}
	call := &ast.CallNode{Callee: callee, Arguments: []ast.Node{arg, n}}
	for _, x := range []ast.Node{callee, n, call} {
		x.SetLocation(loc)
	}
	return call
}

// literal returns the AST literal of a param value, or nil.
func literal(v any) ast.Node {
	switch v := v.(type) {
	case int:
		return &ast.IntegerNode{Value: v}
	case float64:
		return &ast.FloatNode{Value: v}
	case string:
		return &ast.StringNode{Value: v}
	case bool:
		return &ast.BoolNode{Value: v}
	}
	return nil
}

// listArg returns the keyword list id for a literal or named list, or -1
// when the list is only known at run time.
func (r *rewriter) listArg(fn string, n ast.Node) int {
	if name, ok := memberOf(n, "lists"); ok {
		r.cp.used["list:"+name] = true
		if fn == "contains_word" {
			return -1 // a list where a word belongs: the checker says so
		}
		if id, ok := r.cp.listIDs[name]; ok {
			return id
		}
		return -1
	}
	var words []string
	switch v := n.(type) {
	case *ast.StringNode:
		if fn != "contains_word" {
			return -1
		}
		if len(textmatch.Tokens(v.Value)) == 0 {
			r.errs = append(r.errs, patchErr{off: v.Location().From, msg: fmt.Sprintf("%s: %q has no letters or digits, so it can never match a whole word", fn, v.Value)})
			return -1
		}
		words = []string{v.Value}
	case *ast.ArrayNode:
		if fn != "contains_any" {
			return -1
		}
		for _, e := range v.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return -1
			}
			if len(textmatch.Tokens(s.Value)) == 0 {
				r.errs = append(r.errs, patchErr{off: s.Location().From, msg: fmt.Sprintf("%s: %q has no letters or digits, so it can never match a whole word", fn, s.Value)})
				return -1
			}
			words = append(words, s.Value)
		}
	default:
		return -1
	}
	key := strings.Join(words, "\x00")
	if id, ok := r.cp.litIDs[key]; ok {
		return id
	}
	id := r.cp.builder.Add(words)
	r.cp.litIDs[key] = id
	return id
}

// checkMacros finds cycles, then compiles each macro on its own so its
// errors are reported at the macro and not at every use.
func (cp *compiler) checkMacros() {
	for _, name := range cp.set.macroOrder {
		m := cp.macros[name]
		tree, err := parser.Parse(renameMatches(m.text))
		if err != nil {
			continue // reported when compiled below
		}
		collect := identCollector{names: map[string]bool{}}
		ast.Walk(&tree.Node, &collect)
		for n := range collect.names {
			if cp.macros[n] != nil {
				m.deps = append(m.deps, n)
			}
		}
		sort.Strings(m.deps)
	}
	// Depth-first search for cycles, reported once per cycle.
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var stack []string
	var visit func(string)
	visit = func(n string) {
		state[n] = 1
		stack = append(stack, n)
		for _, d := range cp.macros[n].deps {
			switch state[d] {
			case 0:
				visit(d)
			case 1:
				i := 0
				for stack[i] != d {
					i++
				}
				cycle := append(append([]string{}, stack[i:]...), d)
				for _, c := range stack[i:] {
					cp.macros[c].bad = true
				}
				cp.c.errorf(cp.macros[d].pos, "macro cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
	}
	for _, name := range cp.set.macroOrder {
		if state[name] == 0 {
			visit(name)
		}
	}
	for _, name := range cp.set.macroOrder {
		m := cp.macros[name]
		if m.bad {
			continue
		}
		if _, ok := cp.compile(m.text, exprAt{src: m.src, node: m.node}, false); !ok {
			m.bad = true
		}
	}
	// Compiling a macro marks the macros it uses; only rules count as use.
	for k := range cp.used {
		delete(cp.used, k)
	}
}

type identCollector struct{ names map[string]bool }

func (c *identCollector) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		c.names[id.Value] = true
	}
}

func (cp *compiler) rule(r rawRule, order int) *Rule {
	rule := &Rule{
		Name: r.name, Description: r.description, Pos: r.pos, Priority: r.priority,
		Stop: r.stop, Enabled: r.enabled, order: order, prefilter: -1,
	}
	for i, t := range r.on {
		if !schemas.IsEventType(t) {
			msg := fmt.Sprintf("unknown event type %q", t)
			if s := suggest(t, schemas.EventTypes); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(schemas.EventTypes, ", "))
			}
			cp.c.errorf(r.onPos[i], "%s", msg)
			continue
		}
		if !contains(rule.On, t) {
			rule.On = append(rule.On, t)
		}
	}
	kwBefore := cp.kwUses
	defer func() { rule.usesKW = cp.kwUses > kwBefore }()
	ok := true
	// A YAML boolean may be spelt True or TRUE; expr only reads true.
	var whenBool bool
	isBool := r.when != nil && r.when.Tag == "!!bool" && r.when.Decode(&whenBool) == nil
	if r.when != nil && !(isBool && whenBool) {
		rule.When = r.when.Value
		if isBool {
			rule.When = "false"
		}
		at := exprAt{src: r.src, node: r.when}
		c, good := cp.compile(rule.When, at, true)
		if good {
			rule.when = c.prog
			rule.prefilter = prefilter(c.root)
			cp.clauses(rule, at)
		}
		ok = ok && good
	}
	for _, a := range r.actions {
		if act := cp.action(r, a); act != nil {
			rule.Actions = append(rule.Actions, act)
		} else {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return rule
}

// prefilter finds a keyword-list conjunct that decides the rule: the first
// `__kw[i]` along the && chain with nothing before it that could fail at
// run time, so skipping the VM when the list missed changes no outcome and
// hides no error.
func prefilter(root ast.Node) int {
	for _, c := range conjuncts(root) {
		if m, ok := c.(*ast.MemberNode); ok {
			if id, ok := m.Node.(*ast.IdentifierNode); ok && id.Value == kwName {
				if i, ok := m.Property.(*ast.IntegerNode); ok {
					return i.Value
				}
			}
		}
		if !cannotFail(c) {
			return -1
		}
	}
	return -1
}

func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

func cannotFail(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.BoolNode, *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.NilNode, *ast.IdentifierNode:
		return true
	case *ast.MemberNode:
		_, isField := x.Property.(*ast.StringNode)
		return isField && !x.Method && cannotFail(x.Node)
	case *ast.UnaryNode:
		return (x.Operator == "!" || x.Operator == "not") && cannotFail(x.Node)
	case *ast.BinaryNode:
		switch x.Operator {
		case "==", "!=", "<", ">", "<=", ">=", "&&", "||", "and", "or":
			return cannotFail(x.Left) && cannotFail(x.Right)
		}
	}
	return false
}

// clauses splits a rule's when at its top-level && or || so explain can
// show the value of each part.
func (cp *compiler) clauses(rule *Rule, at exprAt) {
	tree, err := parser.Parse(renameMatches(rule.When))
	if err != nil {
		return
	}
	var parts []ast.Node
	var flatten func(n ast.Node, op string)
	flatten = func(n ast.Node, op string) {
		if b, ok := n.(*ast.BinaryNode); ok && normOp(b.Operator) == op {
			flatten(b.Left, op)
			flatten(b.Right, op)
			return
		}
		parts = append(parts, n)
	}
	if b, ok := tree.Node.(*ast.BinaryNode); ok && (normOp(b.Operator) == "&&" || normOp(b.Operator) == "||") {
		rule.clauseOp = normOp(b.Operator)
		flatten(tree.Node, rule.clauseOp)
	} else {
		rule.clauses = []Clause{{Text: display(tree.Node), prog: rule.when}}
		return
	}
	// Clause errors cannot be new (each is part of a valid expression), so
	// they go to a throwaway collector.
	quiet := *cp
	quiet.c = &collector{}
	for _, p := range parts {
		text := display(p)
		c, _ := quiet.compile(p.String(), at, false)
		rule.clauses = append(rule.clauses, Clause{Text: text, prog: c.prog})
	}
}

func normOp(op string) string {
	switch op {
	case "and":
		return "&&"
	case "or":
		return "||"
	}
	return op
}

func display(n ast.Node) string { return strings.ReplaceAll(n.String(), fnMatchs+"(", "matches(") }

func (cp *compiler) action(r rawRule, a rawAction) *Action {
	info, ok := cp.reg.Lookup(a.typ)
	if !ok {
		msg := fmt.Sprintf("unknown action %q", a.typ)
		if s := suggest(a.typ, cp.reg.Names()); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		} else {
			msg += fmt.Sprintf(" (known: %s)", strings.Join(cp.reg.Names(), ", "))
		}
		cp.c.errorf(a.pos, "%s", msg)
		return nil
	}
	raw := map[string]any{}
	tree := map[string]pnode{}
	keyPos := map[string]Pos{}
	ok = true
	if a.params != nil {
		if a.params.Kind != yaml.MappingNode {
			if i := strings.Index(info.Doc, ": {"); i >= 0 {
				cp.c.errorf(r.src.pos(a.params), "%s takes a mapping of parameters, like %s", a.typ, info.Doc[i+2:])
			} else {
				cp.c.errorf(r.src.pos(a.params), "%s takes no parameters", a.typ)
			}
			return nil
		}
		p := &walker{c: cp.c, src: r.src}
		for _, kv := range p.pairs(a.params, a.typ) {
			keyPos[kv[0].Value] = r.src.pos(kv[0])
			rv, tv, good := cp.paramNode(r.src, kv[1])
			if !good {
				ok = false
				continue
			}
			raw[kv[0].Value], tree[kv[0].Value] = rv, tv
		}
	}
	if !ok {
		return nil
	}
	impl, err := info.New(actions.NewParams(raw), cp.set)
	if err != nil {
		for _, e := range flattenErr(err) {
			p := a.pos
			var pe *actions.ParamError
			if errors.As(e, &pe) && keyPos[pe.Key].Line != 0 {
				p = keyPos[pe.Key]
			}
			cp.c.errorf(p, "%s: %v", a.typ, e)
		}
		return nil
	}
	if a.typ == "assign" {
		switch t := raw["team"].(type) {
		case string:
			cp.assigned[t] = true
		case actions.Dynamic:
			cp.dynTeam = true
		}
		if ag, ok := raw["agent"].(string); ok && cp.set.agents[ag] != nil {
			cp.assigned[cp.set.agents[ag].Team] = true
		}
	}
	act := &Action{Type: a.typ, Pos: a.pos, Impl: impl, params: tree}
	if !hasTemplate(tree) {
		// Nothing to render: every firing can share one read-only map.
		act.static, _ = act.Render(nil)
	}
	return act
}

func flattenErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []error{err}
}

// paramNode converts a parameter's YAML into the raw value a constructor
// validates and the tree Render evaluates, compiling templates on the way.
func (cp *compiler) paramNode(src *source, n *yaml.Node) (any, pnode, bool) {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil, true
		case "!!int":
			v, err := strconv.ParseInt(n.Value, 0, 64)
			if err == nil {
				return int(v), int(v), true
			}
		case "!!float":
			var f float64
			if n.Decode(&f) == nil {
				return f, f, true
			}
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b, b, true
			}
		}
		if !strings.Contains(n.Value, "{{") {
			return n.Value, n.Value, true
		}
		t, ok := cp.template(src, n)
		if !ok {
			return nil, nil, false
		}
		return actions.Dynamic{Source: n.Value}, t, true
	case yaml.SequenceNode:
		raws := make([]any, 0, len(n.Content))
		tree := make([]pnode, 0, len(n.Content))
		ok := true
		for _, e := range n.Content {
			r, t, good := cp.paramNode(src, e)
			ok = ok && good
			raws, tree = append(raws, r), append(tree, t)
		}
		return raws, tree, ok
	case yaml.MappingNode:
		p := &walker{c: cp.c, src: src}
		raws := map[string]any{}
		tree := map[string]pnode{}
		ok := true
		for _, kv := range p.pairs(n, "a parameter") {
			r, t, good := cp.paramNode(src, kv[1])
			ok = ok && good
			raws[kv[0].Value], tree[kv[0].Value] = r, t
		}
		return raws, tree, ok
	}
	return nil, nil, false
}

func (cp *compiler) template(src *source, n *yaml.Node) (*template, bool) {
	parts, err := ParseTemplate(n.Value)
	if err != nil {
		var te *TemplateError
		off := 0
		if errors.As(err, &te) {
			off = te.Offset
		}
		cp.c.errorf(src.within(n, off), "template: %s", strings.SplitN(err.Error(), " (at", 2)[0])
		return nil, false
	}
	t := &template{source: n.Value}
	ok := true
	for _, p := range parts {
		if p.Expr == "" {
			t.parts = append(t.parts, tpart{text: p.Text})
			continue
		}
		c, good := cp.compile(p.Expr, exprAt{src: src, node: n, base: p.Offset}, false)
		ok = ok && good
		t.parts = append(t.parts, tpart{prog: c.prog})
	}
	return t, ok
}

// index orders each event type's candidate rules.
func (cp *compiler) index() {
	s := cp.set
	for _, t := range schemas.EventTypes {
		var list []*Rule
		for _, r := range s.rules {
			if r.Enabled && contains(r.On, t) {
				list = append(list, r)
			}
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Priority > list[j].Priority })
		if len(list) > 0 {
			s.byType[t] = list
		}
		for _, r := range list {
			if r.usesKW {
				s.kwTypes[t] = true
			}
		}
	}
}

func (cp *compiler) warnings(paramPos, listPos map[string]Pos) {
	s := cp.set
	for _, t := range schemas.EventTypes {
		var stopper *Rule
		for _, r := range s.byType[t] {
			if stopper != nil {
				cp.c.warnf(r.Pos, "rule %q can never fire on %s: rule %q (%s) has no condition and stops every %s event before it", r.Name, t, stopper.Name, stopper.Pos, t)
				continue
			}
			if r.Stop && r.when == nil {
				stopper = r
			}
		}
	}
	for _, n := range s.paramOrder {
		if !cp.used["param:"+n] && n != "default_eta_minutes" {
			cp.c.warnf(paramPos[n], "param %q is never used", n)
		}
	}
	for _, n := range s.listOrder {
		if !cp.used["list:"+n] {
			cp.c.warnf(listPos[n], "list %q is never used", n)
		}
	}
	for _, n := range s.macroOrder {
		if !cp.used["macro:"+n] && !cp.macros[n].bad {
			cp.c.warnf(cp.macros[n].pos, "macro %q is never used", n)
		}
	}
	if !cp.dynTeam {
		for _, n := range s.teamOrder {
			if !cp.assigned[n] {
				cp.c.warnf(s.teams[n].Pos, "team %q: no rule assigns to it", n)
			}
		}
	}
}

func hasTemplate(n pnode) bool {
	switch n := n.(type) {
	case *template:
		return true
	case []pnode:
		for _, e := range n {
			if hasTemplate(e) {
				return true
			}
		}
	case map[string]pnode:
		for _, e := range n {
			if hasTemplate(e) {
				return true
			}
		}
	}
	return false
}
