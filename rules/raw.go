package rules

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The raw types hold a rule file as written, with positions, before any
// cross-file check or compilation. Nothing outside this package sees them.

type rawFile struct {
	src       *source
	version   int
	hasVer    bool
	params    []rawNamed
	lists     []rawNamed
	macros    []rawNamed
	teams     []rawTeam
	rules     []rawRule
	calendars []rawCalendar
	policies  []rawPolicy
}

// rawNamed is a param, list or macro: a name and its value node.
type rawNamed struct {
	name  string
	pos   Pos
	value *yaml.Node
	src   *source
}

type rawTeam struct {
	name     string
	pos      Pos
	strategy string
	stratPos Pos
	members  []rawMember
}

type rawMember struct {
	id        string
	pos       Pos
	name      string
	skills    []string
	languages []string
	capacity  int
}

type rawRule struct {
	src         *source
	index       int // position in its file
	name        string
	pos         Pos
	namePos     Pos
	description string
	on          []string
	onPos       []Pos
	when        *yaml.Node // nil: always
	priority    int
	stop        bool
	enabled     bool
	actions     []rawAction
}

type rawAction struct {
	typ    string
	pos    Pos
	params *yaml.Node // nil when the action has none
}

var (
	ruleNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	identNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// walker walks one file's YAML nodes into raw types, collecting problems.
type walker struct {
	c   *collector
	src *source
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "a document"
}

// pairs returns a mapping's key/value nodes, reporting duplicate keys and
// anything that is not a mapping.
func (p *walker) pairs(n *yaml.Node, what string) [][2]*yaml.Node {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.c.errorf(p.src.pos(n), "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	seen := map[string]*yaml.Node{}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.c.errorf(p.src.pos(k), "%s: keys must be plain names", what)
			continue
		}
		if k.Value == "<<" {
			p.c.errorf(p.src.pos(k), "%s: merge keys (<<) are not supported; repeat the keys", what)
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			p.c.errorf(p.src.pos(k), "%s: key %q repeated (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func (p *walker) seq(n *yaml.Node, what string) []*yaml.Node {
	n = resolve(n)
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.c.errorf(p.src.pos(n), "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		out[i] = resolve(e)
	}
	return out
}

func (p *walker) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.c.errorf(p.src.pos(n), "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// strListPos is strList keeping each entry's position.
func (p *walker) strListPos(n *yaml.Node, what string) []rawValue {
	var out []rawValue
	for _, e := range p.seq(n, what) {
		if s, ok := p.str(e, what+" entry"); ok {
			if strings.TrimSpace(s) == "" {
				p.c.errorf(p.src.pos(e), "%s entry must not be empty", what)
				continue
			}
			out = append(out, rawValue{s, p.src.pos(e)})
		}
	}
	return out
}

// name reads the name of a rule or SLA policy, which must be a slug.
func (p *walker) name(v *yaml.Node, kind string) (string, Pos) {
	s, ok := p.str(v, "name")
	if !ok {
		return "", Pos{}
	}
	if !ruleNameRE.MatchString(s) {
		p.c.errorf(p.src.pos(v), "%s name %q must match [a-z0-9][a-z0-9_-]*", kind, s)
	}
	return s, p.src.pos(v)
}

// when reads a when: an expression scalar, or nil after reporting why not.
func (p *walker) when(v *yaml.Node) *yaml.Node {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.c.errorf(p.src.pos(v), "when must be an expression, not %s", kindName(v))
		return nil
	}
	if !p.expression(v, "expression") {
		return nil
	}
	return v
}

// expression checks a when or macro node: YAML reads a leading ! as a tag,
// which silently drops it from the expression.
func (p *walker) expression(n *yaml.Node, what string) bool {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		p.c.errorf(p.src.pos(n), "YAML reads %s as a tag, not as part of the %s: quote the expression, like '%s%s'", n.Tag, what, n.Tag, strings.TrimSpace(" "+n.Value))
		return false
	}
	return true
}

func (p *walker) strList(n *yaml.Node, what string) []string {
	var out []string
	for _, e := range p.seq(n, what) {
		if s, ok := p.str(e, what+" entry"); ok {
			if strings.TrimSpace(s) == "" {
				p.c.errorf(p.src.pos(e), "%s entry must not be empty", what)
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

func (p *walker) integer(n *yaml.Node, what string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(n.Value, 0, 64)
		if err == nil {
			return int(v), true
		}
	}
	p.c.errorf(p.src.pos(n), "%s must be an integer, not %q", what, n.Value)
	return 0, false
}

func (p *walker) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	p.c.errorf(p.src.pos(n), "%s must be true or false, not %q", what, n.Value)
	return false, false
}

func (p *walker) unknown(k *yaml.Node, what string, known []string) {
	p.c.errorf(p.src.pos(k), "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
}

var topKeys = []string{"version", "params", "lists", "macros", "teams", "business_hours", "sla", "rules"}

func (p *walker) file(data []byte) *rawFile {
	f := &rawFile{src: p.src}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		msg := yamlErrMsg(err)
		if bytes.Contains(data, []byte(": !")) && !bytes.Contains(data, []byte(": !!")) {
			msg += " (a value that starts with ! is a YAML tag: quote an expression like when: '!bot_handles && ...')"
		}
		p.c.errorf(Pos{File: p.src.path, Line: yamlErrLine(err), Col: 1}, "invalid YAML: %s", msg)
		return nil
	}
	// yaml.Unmarshal would read the first document and drop the rest
	// without a word; rules after a --- must not vanish.
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.c.errorf(Pos{File: p.src.path, Line: max(next.Line, 1), Col: 1}, "a rule file holds one YAML document; move what follows this --- into a file of its own")
	} else if err != io.EOF {
		p.c.errorf(Pos{File: p.src.path, Line: yamlErrLine(err), Col: 1}, "invalid YAML: %s", yamlErrMsg(err))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.c.errorf(Pos{File: p.src.path, Line: 1, Col: 1}, "empty rule file: it needs at least version: 1")
		return nil
	}
	root := resolve(doc.Content[0])
	for _, kv := range p.pairs(root, "a rule file") {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "version":
			f.hasVer = true
			if n, ok := p.integer(v, "version"); ok {
				if n != 1 {
					p.c.errorf(p.src.pos(v), "unsupported version %d: this triage reads version 1", n)
				}
				f.version = n
			}
		case "params":
			for _, pv := range p.pairs(v, "params") {
				f.params = append(f.params, rawNamed{name: pv[0].Value, pos: p.src.pos(pv[0]), value: pv[1], src: p.src})
			}
		case "lists":
			for _, pv := range p.pairs(v, "lists") {
				f.lists = append(f.lists, rawNamed{name: pv[0].Value, pos: p.src.pos(pv[0]), value: pv[1], src: p.src})
			}
		case "macros":
			for _, pv := range p.pairs(v, "macros") {
				f.macros = append(f.macros, rawNamed{name: pv[0].Value, pos: p.src.pos(pv[0]), value: pv[1], src: p.src})
			}
		case "teams":
			for _, pv := range p.pairs(v, "teams") {
				f.teams = append(f.teams, p.team(pv[0], pv[1]))
			}
		case "business_hours":
			for _, kv := range p.pairs(v, "business_hours") {
				f.calendars = append(f.calendars, p.calendar(kv[0], kv[1]))
			}
		case "sla":
			for _, pn := range p.seq(v, "sla") {
				if pol, ok := p.policy(pn); ok {
					f.policies = append(f.policies, pol)
				}
			}
		case "rules":
			for i, rn := range p.seq(v, "rules") {
				if r, ok := p.rule(rn, i); ok {
					f.rules = append(f.rules, r)
				}
			}
		default:
			p.unknown(k, "a rule file", topKeys)
		}
	}
	if root != nil && root.Kind == yaml.MappingNode && !f.hasVer {
		p.c.errorf(p.src.pos(root), "missing version: every rule file starts with version: 1")
	}
	return f
}

var teamKeys = []string{"strategy", "members"}
var memberKeys = []string{"id", "name", "skills", "languages", "capacity"}

func (p *walker) team(k, v *yaml.Node) rawTeam {
	t := rawTeam{name: k.Value, pos: p.src.pos(k)}
	hasMembers := false
	for _, kv := range p.pairs(v, "team "+strconv.Quote(k.Value)) {
		switch kv[0].Value {
		case "strategy":
			if s, ok := p.str(kv[1], "strategy"); ok {
				if s != "round_robin" && s != "least_busy" {
					p.c.errorf(p.src.pos(kv[1]), "strategy %q is not round_robin or least_busy", s)
				}
				t.strategy, t.stratPos = s, p.src.pos(kv[1])
			}
		case "members":
			hasMembers = true
			members := p.seq(kv[1], "members")
			if len(members) == 0 {
				p.c.errorf(p.src.pos(kv[0]), "team %q has no members", k.Value)
			}
			for _, mn := range members {
				t.members = append(t.members, p.member(mn))
			}
		default:
			p.unknown(kv[0], "a team", teamKeys)
		}
	}
	if !hasMembers {
		p.c.errorf(t.pos, "team %q needs members", k.Value)
	}
	if t.strategy == "" {
		t.strategy = "round_robin"
	}
	return t
}

func (p *walker) member(n *yaml.Node) rawMember {
	m := rawMember{pos: p.src.pos(n)}
	for _, kv := range p.pairs(n, "a team member") {
		switch kv[0].Value {
		case "id":
			if s, ok := p.str(kv[1], "id"); ok {
				m.id, m.pos = s, p.src.pos(kv[1])
				if !ruleNameRE.MatchString(s) {
					p.c.errorf(p.src.pos(kv[1]), "agent id %q must match [a-z0-9][a-z0-9_-]*", s)
				}
			}
		case "name":
			m.name, _ = p.str(kv[1], "name")
		case "skills":
			m.skills = p.strList(kv[1], "skills")
		case "languages":
			m.languages = p.strList(kv[1], "languages")
		case "capacity":
			if c, ok := p.integer(kv[1], "capacity"); ok {
				if c < 1 {
					p.c.errorf(p.src.pos(kv[1]), "capacity must be 1 or more (leave it out for no limit)")
				}
				m.capacity = c
			}
		default:
			p.unknown(kv[0], "a team member", memberKeys)
		}
	}
	if m.id == "" {
		p.c.errorf(m.pos, "team member needs an id")
	}
	return m
}

var ruleKeys = []string{"name", "description", "on", "when", "priority", "stop", "enabled", "actions"}

func (p *walker) rule(n *yaml.Node, index int) (rawRule, bool) {
	r := rawRule{src: p.src, index: index, pos: p.src.pos(n), enabled: true}
	if n.Kind != yaml.MappingNode {
		p.c.errorf(p.src.pos(n), "a rule must be a mapping, not %s", kindName(n))
		return r, false
	}
	var hasOn, hasActions bool
	for _, kv := range p.pairs(n, "a rule") {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			r.name, r.namePos = p.name(v, "rule")
		case "description":
			r.description, _ = p.str(v, "description")
		case "on":
			hasOn = true
			var items []*yaml.Node
			if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
				items = []*yaml.Node{v}
			} else {
				items = p.seq(v, "on")
			}
			if len(items) == 0 {
				p.c.errorf(p.src.pos(v), "on needs at least one event type")
			}
			for _, e := range items {
				if s, ok := p.str(e, "event type"); ok {
					r.on = append(r.on, s)
					r.onPos = append(r.onPos, p.src.pos(e))
				}
			}
		case "when":
			r.when = p.when(v)
		case "priority":
			r.priority, _ = p.integer(v, "priority")
		case "stop":
			r.stop, _ = p.boolean(v, "stop")
		case "enabled":
			r.enabled, _ = p.boolean(v, "enabled")
		case "actions":
			hasActions = true
			items := p.seq(v, "actions")
			if len(items) == 0 {
				p.c.errorf(p.src.pos(v), "actions needs at least one action")
			}
			for _, an := range items {
				if a, ok := p.action(an); ok {
					r.actions = append(r.actions, a)
				}
			}
		default:
			p.unknown(k, "a rule", ruleKeys)
		}
	}
	if r.name == "" {
		p.c.errorf(r.pos, "rule needs a name")
	}
	if !hasOn {
		p.c.errorf(r.pos, "rule %s needs on: the event types it applies to", quoteOr(r.name))
	}
	if !hasActions {
		p.c.errorf(r.pos, "rule %s needs actions", quoteOr(r.name))
	}
	return r, r.name != ""
}

func quoteOr(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return strconv.Quote(name)
}

func (p *walker) action(n *yaml.Node) (rawAction, bool) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		return rawAction{typ: n.Value, pos: p.src.pos(n)}, true
	case n.Kind == yaml.MappingNode:
		if len(n.Content) != 2 {
			p.c.errorf(p.src.pos(n), "an action is a one-key mapping like `- escalate: {reason: keyword}`; this one has %d keys", len(n.Content)/2)
			return rawAction{}, false
		}
		k, v := n.Content[0], resolve(n.Content[1])
		a := rawAction{typ: k.Value, pos: p.src.pos(k)}
		if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			a.params = v
		}
		return a, true
	}
	p.c.errorf(p.src.pos(n), "an action is a one-key mapping like `- escalate: {reason: keyword}`, not %s", kindName(n))
	return rawAction{}, false
}

// yamlErrLine digs the line number out of a yaml.v3 syntax error, which
// only offers it inside its message ("yaml: line 7: ...").
func yamlErrLine(err error) int {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, e := strconv.Atoi(rest[:j]); e == nil {
			return n
		}
	}
	return 1
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, "line "); i == 0 {
		if j := strings.Index(msg, ": "); j >= 0 {
			msg = msg[j+2:]
		}
	}
	return msg
}

// rawValue is a scalar with its position.
type rawValue struct {
	s   string
	pos Pos
}

type rawCalendar struct {
	name     string
	pos      Pos
	timezone rawValue
	weekly   map[string][]rawValue // day key as written
	dayPos   map[string]Pos
	days     []string // day keys in file order
	holidays []rawValue
	complete bool // timezone and weekly were given
}

type rawPolicy struct {
	src       *source
	name      string
	pos       Pos
	namePos   Pos
	when      *yaml.Node
	durations map[string]rawValue // first_response, next_response, resolution
	calendar  rawValue
	warn      rawValue
}

var calendarKeys = []string{"timezone", "weekly", "holidays"}
var policyKeys = []string{"name", "when", "first_response", "next_response", "resolution", "business_hours", "warn_before"}

func (p *walker) calendar(k, v *yaml.Node) rawCalendar {
	c := rawCalendar{name: k.Value, pos: p.src.pos(k), weekly: map[string][]rawValue{}, dayPos: map[string]Pos{}}
	hasTZ, hasWeekly := false, false
	for _, kv := range p.pairs(v, "calendar "+strconv.Quote(k.Value)) {
		switch kv[0].Value {
		case "timezone":
			if s, ok := p.str(kv[1], "timezone"); ok {
				if strings.TrimSpace(s) == "" {
					p.c.errorf(p.src.pos(kv[1]), "timezone must not be empty: an IANA name like Asia/Kolkata")
					continue
				}
				hasTZ = true
				c.timezone = rawValue{s, p.src.pos(kv[1])}
			}
		case "weekly":
			hasWeekly = true
			for _, dv := range p.pairs(kv[1], "weekly") {
				day := dv[0].Value
				c.days = append(c.days, day)
				c.dayPos[day] = p.src.pos(dv[0])
				c.weekly[day] = []rawValue{}
				for _, in := range p.seq(dv[1], "weekly "+day) {
					if s, ok := p.str(in, "an opening interval"); ok {
						c.weekly[day] = append(c.weekly[day], rawValue{s, p.src.pos(in)})
					}
				}
			}
		case "holidays":
			for _, hn := range p.seq(kv[1], "holidays") {
				if s, ok := p.str(hn, "a holiday"); ok {
					c.holidays = append(c.holidays, rawValue{s, p.src.pos(hn)})
				}
			}
		default:
			p.unknown(kv[0], "a business_hours calendar", calendarKeys)
		}
	}
	if !hasTZ {
		p.c.errorf(c.pos, "calendar %q needs a timezone (an IANA name like Asia/Kolkata)", c.name)
	}
	if !hasWeekly {
		p.c.errorf(c.pos, "calendar %q needs weekly opening hours", c.name)
	}
	c.complete = hasTZ && hasWeekly
	return c
}

func (p *walker) policy(n *yaml.Node) (rawPolicy, bool) {
	pol := rawPolicy{src: p.src, pos: p.src.pos(n), durations: map[string]rawValue{}}
	if n.Kind != yaml.MappingNode {
		p.c.errorf(p.src.pos(n), "an SLA policy must be a mapping, not %s", kindName(n))
		return pol, false
	}
	for _, kv := range p.pairs(n, "an SLA policy") {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			pol.name, pol.namePos = p.name(v, "SLA policy")
		case "when":
			pol.when = p.when(v)
		case "first_response", "next_response", "resolution":
			if s, ok := p.str(v, k.Value); ok {
				pol.durations[k.Value] = rawValue{s, p.src.pos(v)}
			}
		case "business_hours":
			if s, ok := p.str(v, "business_hours"); ok {
				pol.calendar = rawValue{s, p.src.pos(v)}
			}
		case "warn_before":
			if s, ok := p.str(v, "warn_before"); ok {
				pol.warn = rawValue{s, p.src.pos(v)}
			}
		default:
			p.unknown(k, "an SLA policy", policyKeys)
		}
	}
	if pol.name == "" {
		p.c.errorf(pol.pos, "an SLA policy needs a name")
		return pol, false
	}
	if len(pol.durations) == 0 {
		p.c.errorf(pol.pos, "SLA policy %q measures nothing: give first_response, next_response or resolution", pol.name)
	}
	return pol, true
}
