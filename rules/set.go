package rules

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr/vm"
	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/textmatch"
)

// Set is a compiled rule set: immutable after Load and safe for concurrent
// use. Each worker evaluating it makes its own Env.
type Set struct {
	version     string
	files       []string
	params      map[string]any
	paramOrder  []string
	paramsValue any
	lists       map[string][]string
	listOrder   []string
	listsValue  any
	macroOrder  []string
	teams       map[string]*Team
	teamOrder   []string
	agents      map[string]*Agent
	rules       []*Rule
	byType      map[string][]*Rule
	matcher     *textmatch.Matcher
	textLists   bool
	kwTypes     map[string]bool // event types with a rule reading keyword hits
	regexps     []regexpEntry
	defaultETA  int
	warnings    Errors

	calendars    map[string]*Calendar
	calendarList []*Calendar // indexed by the __in_hours rewrite
	policies     []*SLAPolicy
}

// Version is the rule set's version: sha256: and 12 hex digits over every
// rule file's path and bytes, in load order.
func (s *Set) Version() string { return s.version }

// Files lists the rule files in load order, relative to the directory.
func (s *Set) Files() []string { return s.files }

// Warnings lists what is probably a mistake but did not stop the load.
func (s *Set) Warnings() Errors { return s.warnings }

// Rules returns every rule in load order.
func (s *Set) Rules() []*Rule { return s.rules }

// Rule returns the rule named name, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Candidates returns the enabled rules for an event type, in evaluation
// order: priority, highest first, then load order.
func (s *Set) Candidates(eventType string) []*Rule { return s.byType[eventType] }

// Param returns a param's value.
func (s *Set) Param(name string) (any, bool) {
	v, ok := s.params[name]
	return v, ok
}

// Params returns the param names in load order.
func (s *Set) Params() []string { return s.paramOrder }

// DefaultETA is params.default_eta_minutes, or 5 when it is not set.
func (s *Set) DefaultETA() int { return s.defaultETA }

// Team returns the team named name, or nil.
func (s *Set) Team(name string) *Team { return s.teams[name] }

// Teams returns the teams in load order.
func (s *Set) Teams() []*Team {
	out := make([]*Team, len(s.teamOrder))
	for i, n := range s.teamOrder {
		out[i] = s.teams[n]
	}
	return out
}

// Agent returns the agent with this id, or nil.
func (s *Set) Agent(id string) *Agent { return s.agents[id] }

// HasTeam implements actions.Catalog.
func (s *Set) HasTeam(name string) bool { return s.teams[name] != nil }

// HasAgent implements actions.Catalog.
func (s *Set) HasAgent(id string) bool { return s.agents[id] != nil }

// Team is a group of agents that conversations are assigned among.
type Team struct {
	Name     string
	Strategy string // round_robin or least_busy
	Members  []*Agent
	Pos      Pos
}

// Agent is a team member.
type Agent struct {
	ID        string
	Name      string
	FirstName string
	Team      string
	Skills    []string
	Languages []string
	Capacity  int // 0: no limit
}

// HasSkills reports whether the agent holds every skill.
func (a *Agent) HasSkills(skills []string) bool {
	for _, s := range skills {
		if !contains(a.Skills, s) {
			return false
		}
	}
	return true
}

// Speaks reports whether the agent speaks lang; an empty lang is any.
//
// Languages compare as tags, case-insensitively and with WhatsApp's
// underscore (en_GB) read as a hyphen; an agent's plain "en" covers
// "en-GB", and a request for plain "pt" is met by "pt-BR".
func (a *Agent) Speaks(lang string) bool {
	if lang == "" {
		return true
	}
	want := normLang(lang)
	for _, l := range a.Languages {
		have := normLang(l)
		if have == want || primary(want) == have || primary(have) == want {
			return true
		}
	}
	return false
}

func normLang(l string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(l), "_", "-"))
}

func primary(l string) string {
	if i := strings.IndexByte(l, '-'); i >= 0 {
		return l[:i]
	}
	return l
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Rule is a compiled rule.
type Rule struct {
	Name        string
	Description string
	Pos         Pos
	On          []string
	When        string // the source, "" when the rule always matches
	Priority    int
	Stop        bool
	Enabled     bool
	Actions     []*Action

	order     int // load order across the set
	when      *vm.Program
	prefilter int // a keyword list that must hit for the rule to match; -1: none
	clauses   []Clause
	clauseOp  string
	usesKW    bool // when or a template reads keyword hits of event.text
}

// Clause is one top-level operand of a rule's when, for explain.
type Clause struct {
	Text string
	prog *vm.Program
}

// Match evaluates the rule's when. A run-time error means no match.
func (r *Rule) Match(env *Env) (bool, error) {
	if r.when == nil {
		return true, nil
	}
	// A keyword conjunct that cannot hit makes the whole && false; checking
	// it first skips the VM for most keyword rules.
	if r.prefilter >= 0 && !env.kw[r.prefilter] {
		return false, nil
	}
	v, err := env.run(r.when)
	if err != nil {
		return false, fmt.Errorf("rule %s: when: %w", r.Name, err)
	}
	b, _ := v.(bool)
	return b, nil
}

// Clauses returns the top-level && or || operands of when and the operator
// joining them ("&&", "||", or "" for a single clause).
func (r *Rule) Clauses() ([]Clause, string) { return r.clauses, r.clauseOp }

// Eval evaluates one clause.
func (c Clause) Eval(env *Env) (any, error) {
	if c.prog == nil {
		return nil, fmt.Errorf("clause could not be compiled on its own")
	}
	return env.run(c.prog)
}

// Action is a compiled action of a rule.
type Action struct {
	Type   string
	Pos    Pos
	Impl   actions.Action
	params map[string]pnode
	static map[string]any // the rendered params when there is no template
}

// pnode is a parameter value: string, *template, int, float64, bool, nil,
// []pnode or map[string]pnode.
type pnode any

// Render evaluates the action's templates against the current state.
//
// The map is read-only: without templates it is shared by every firing.
func (a *Action) Render(env *Env) (map[string]any, error) {
	if a.static != nil {
		return a.static, nil
	}
	out := make(map[string]any, len(a.params))
	for k, v := range a.params {
		r, err := renderNode(v, env)
		if err != nil {
			return out, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

func renderNode(n pnode, env *Env) (any, error) {
	switch n := n.(type) {
	case *template:
		return n.render(env)
	case []pnode:
		out := make([]any, len(n))
		for i, e := range n {
			r, err := renderNode(e, env)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]pnode:
		out := make(map[string]any, len(n))
		for k, e := range n {
			r, err := renderNode(e, env)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return n, nil
}
