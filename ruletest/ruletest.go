// Package ruletest reads and runs rule tests: `*_test.yaml` files that
// send events through a rule set and say what should happen. A test reads
// like a conversation, so the format favours shorthands:
//
//	tests:
//	  - name: asking for a human reaches one
//	    events:
//	      - message: "Can I speak to someone?"
//	        expect:
//	          matched: [human-keyword]
//	          conversation: {handler: human, assignee: anita}
//
// The reference is docs/testing.md.
package ruletest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// DefaultStart is the clock of a test's first event unless it says
// otherwise: a Monday morning, so business-hours rules have a sane default.
var DefaultStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// DefaultStep is how far the clock moves between events by default.
const DefaultStep = time.Minute

// Suite is one parsed test file.
type Suite struct {
	File  string
	Tests []*Case
}

// Case is one test: events in order, with expectations.
type Case struct {
	Name   string
	Pos    rules.Pos
	Agents map[string]string
	State  map[string]any // conversation fields before the first event
	Start  time.Time
	Events []*Step
}

// Step is one event of a test and what it should produce.
type Step struct {
	Pos      rules.Pos
	Event    schemas.Event
	After    time.Duration // clock advance before this event, when At is not given
	HasAfter bool
	HasAt    bool
	// Wait, on a step with no event, moves the clock and only fires the
	// SLA deadlines that fall due; expect: fired: says what they did.
	Wait   time.Duration
	IsWait bool
	Expect []Expectation
}

// Expectation is one key under expect:, checked against the decision.
type Expectation struct {
	Key  string
	Pos  rules.Pos
	Want any
}

var (
	fileKeys   = []string{"version", "defaults", "tests"}
	caseKeys   = []string{"name", "agents", "state", "start", "events"}
	expectKeys = []string{"matched", "not_matched", "actions", "actions_include", "conversation", "contact", "errors", "duplicate", "assignments", "fired"}
	eventShort = []string{"message", "bot", "after", "wait", "expect"}
	// firedKeys are what an entry of expect: fired: may say of one SLA
	// decision: which deadline it was, and what the rules did.
	firedKeys = []string{"type", "metric", "policy", "at", "due_at", "matched", "not_matched", "actions", "actions_include", "conversation", "errors"}
)

type parser struct {
	path string
	errs rules.Errors
}

func (p *parser) pos(n *yaml.Node) rules.Pos {
	return rules.Pos{File: p.path, Line: n.Line, Col: n.Column}
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, rules.Error{Pos: p.pos(n), Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) pairs(n *yaml.Node, what string) [][2]*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return nil
	}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

func (p *parser) unknown(k *yaml.Node, what string, known []string) {
	p.errorf(k, "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
}

func decodeAny(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

// normalize makes YAML values comparable with JSON-decoded ones.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// Parse reads a test file. Problems come back as rules.Errors with
// positions.
func Parse(path string, data []byte) (*Suite, error) {
	p := &parser{path: path}
	s := &Suite{File: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, rules.Errors{{Pos: rules.Pos{File: path, Line: 1, Col: 1}, Msg: "invalid YAML: " + err.Error()}}
	}
	if len(doc.Content) == 0 {
		return nil, rules.Errors{{Pos: rules.Pos{File: path, Line: 1, Col: 1}, Msg: "empty test file: it needs tests:"}}
	}
	var defaults map[string]any
	var testsNode *yaml.Node
	for _, kv := range p.pairs(doc.Content[0], "a test file") {
		switch kv[0].Value {
		case "version":
		case "defaults":
			v, err := decodeAny(kv[1])
			m, ok := v.(map[string]any)
			if err != nil || !ok {
				p.errorf(kv[1], "defaults must be a mapping of event fields")
			}
			for _, k := range eventShort {
				if _, has := m[k]; has {
					p.errorf(kv[1], "defaults takes event fields; %s: is a shorthand of a single event and cannot be a default", k)
				}
			}
			defaults = m
		case "tests":
			testsNode = kv[1]
		default:
			p.unknown(kv[0], "a test file", fileKeys)
		}
	}
	if testsNode == nil {
		p.errorf(doc.Content[0], "a test file needs tests:")
	} else if testsNode.Kind != yaml.SequenceNode {
		p.errorf(testsNode, "tests must be a list")
	} else {
		names := map[string]bool{}
		for _, tn := range testsNode.Content {
			if c := p.testCase(tn, defaults); c != nil {
				if names[c.Name] {
					p.errorf(tn, "test %q defined twice in this file", c.Name)
				}
				names[c.Name] = true
				s.Tests = append(s.Tests, c)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return s, nil
}

func (p *parser) testCase(n *yaml.Node, defaults map[string]any) *Case {
	c := &Case{Pos: p.pos(n), Start: DefaultStart}
	var eventsNode *yaml.Node
	for _, kv := range p.pairs(n, "a test") {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			c.Name = v.Value
		case "agents":
			c.Agents = map[string]string{}
			for _, av := range p.pairs(v, "agents") {
				switch av[1].Value {
				case schemas.AgentOnline, schemas.AgentAway, schemas.AgentOffline:
					c.Agents[av[0].Value] = av[1].Value
				default:
					p.errorf(av[1], "agent status must be online, away or offline")
				}
			}
		case "state":
			st, err := decodeAny(v)
			m, ok := st.(map[string]any)
			if err != nil || !ok {
				p.errorf(v, "state must be a mapping of conversation fields")
				continue
			}
			if err := checkFields(m, reflectConversationFields); err != nil {
				p.errorf(v, "state: %v", err)
				continue
			}
			if err := validState(m); err != nil {
				p.errorf(v, "state: %v", err)
				continue
			}
			c.State = m
		case "start":
			t, err := time.Parse(time.RFC3339, v.Value)
			if err != nil {
				p.errorf(v, "start must be an RFC 3339 time like 2026-01-05T09:00:00Z")
			}
			c.Start = t
		case "events":
			eventsNode = v
		default:
			p.unknown(k, "a test", caseKeys)
		}
	}
	if c.Name == "" {
		p.errorf(n, "a test needs a name")
	}
	if eventsNode == nil || eventsNode.Kind != yaml.SequenceNode || len(eventsNode.Content) == 0 {
		p.errorf(n, "test %q needs events: a list of at least one event", c.Name)
		return c
	}
	for i, en := range eventsNode.Content {
		if st := p.step(en, i, c, defaults); st != nil {
			c.Events = append(c.Events, st)
		}
	}
	return c
}

var reflectConversationFields = jsonFields(schemas.Conversation{})

func jsonFields(v any) map[string]bool {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	// omitzero fields do not show on a zero value; list them by hand.
	for _, k := range []string{"opened_at", "first_response_at", "last_customer_message_at", "last_agent_message_at", "contact", "sla"} {
		out[k] = true
	}
	return out
}

func checkFields(m map[string]any, known map[string]bool) error {
	for k := range m {
		if !known[k] {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("unknown field %q (known: %s)", k, strings.Join(names, ", "))
		}
	}
	return nil
}

func (p *parser) step(n *yaml.Node, i int, c *Case, defaults map[string]any) *Step {
	st := &Step{Pos: p.pos(n)}
	fields := map[string]any{}
	for k, v := range defaults {
		fields[k] = v
	}
	given := map[string]bool{}
	for _, kv := range p.pairs(n, "an event") {
		given[kv[0].Value] = true
	}
	switch {
	case given["message"] && given["bot"]:
		p.errorf(n, "event %d: message: and bot: are two events; write them as two steps", i+1)
		return nil
	case (given["message"] || given["bot"]) && (given["type"] || given["text"]):
		p.errorf(n, "event %d: message: and bot: set the type and the text already; drop type:/text: or the shorthand", i+1)
		return nil
	}
	for _, kv := range p.pairs(n, "an event") {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "message":
			fields["type"], fields["text"] = schemas.MessageReceived, v.Value
		case "bot":
			fields["type"], fields["text"] = schemas.BotAnswered, v.Value
		case "after":
			d, err := time.ParseDuration(v.Value)
			if err != nil || d < 0 {
				p.errorf(v, "after must be a duration like 30s, 5m or 25h")
			}
			st.After, st.HasAfter = d, true
		case "wait":
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				p.errorf(v, "wait must be a duration like 30s, 5m or 25h")
			}
			st.Wait, st.IsWait = d, true
		case "expect":
			for _, ev := range p.pairs(v, "expect") {
				if !contains(expectKeys, ev[0].Value) {
					p.unknown(ev[0], "expect", expectKeys)
					continue
				}
				want, err := decodeAny(ev[1])
				if err != nil {
					p.errorf(ev[1], "%v", err)
					continue
				}
				if err := p.checkExpect(ev[0].Value, want); err != nil {
					p.errorf(ev[1], "%s: %v", ev[0].Value, err)
					continue
				}
				st.Expect = append(st.Expect, Expectation{Key: ev[0].Value, Pos: p.pos(ev[0]), Want: want})
			}
		default:
			v2, err := decodeAny(v)
			if err != nil {
				p.errorf(v, "%v", err)
				continue
			}
			if k.Value == "at" {
				st.HasAt = true
			}
			fields[k.Value] = v2
		}
	}
	if st.IsWait {
		if len(fields) > len(defaults) || st.HasAfter {
			p.errorf(n, "step %d: wait: moves the clock without an event; give it only expect: fired:", i+1)
			return nil
		}
		for _, e := range st.Expect {
			if e.Key != "fired" {
				p.errorf(n, "step %d: after a wait: only expect: fired: applies (there is no event to check %s on)", i+1, e.Key)
				return nil
			}
		}
		return st
	}
	if _, ok := fields["id"]; !ok {
		fields["id"] = fmt.Sprintf("%s#%d", c.Name, i+1)
	}
	if _, ok := fields["conversation"]; !ok {
		fields["conversation"] = "c1"
	}
	if _, ok := fields["at"]; !ok {
		fields["at"] = DefaultStart.Format(time.RFC3339) // replaced by the runner's clock
	}
	b, _ := json.Marshal(fields)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st.Event); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if strings.HasPrefix(msg, "unknown field") {
			msg += fmt.Sprintf(" (an event takes the fields of the contract plus the shorthands %s)", strings.Join(eventShort, ", "))
		}
		p.errorf(n, "event %d: %s", i+1, msg)
		return nil
	}
	if st.Event.Type == "" {
		p.errorf(n, "event %d needs a type (or the shorthand message: or bot:)", i+1)
		return nil
	}
	return st
}

// badMatcher finds a {matches: RE} whose expression does not compile.
func badMatcher(v any) error {
	switch v := v.(type) {
	case map[string]any:
		if re, ok := v["matches"].(string); ok && len(v) == 1 {
			if _, err := regexp.Compile(re); err != nil {
				return fmt.Errorf("matches: %w", err)
			}
		}
		for _, e := range v {
			if err := badMatcher(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := badMatcher(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) checkExpect(key string, want any) error {
	if err := badMatcher(want); err != nil {
		return err
	}
	switch key {
	case "matched", "not_matched", "errors":
		l, ok := want.([]any)
		if !ok {
			return fmt.Errorf("must be a list of rule names")
		}
		for _, e := range l {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("must be a list of rule names")
			}
		}
	case "actions", "actions_include":
		l, ok := want.([]any)
		if !ok {
			return fmt.Errorf("must be a list of actions like `- reply: {text: ...}`")
		}
		for _, e := range l {
			if _, _, err := splitAction(e); err != nil {
				return err
			}
		}
	case "conversation":
		m, ok := want.(map[string]any)
		if !ok {
			return fmt.Errorf("must be a mapping of conversation fields")
		}
		return checkFields(m, reflectConversationFields)
	case "contact":
		if _, ok := want.(map[string]any); !ok {
			return fmt.Errorf("must be a mapping of contact fields")
		}
	case "fired":
		l, ok := want.([]any)
		if !ok {
			return fmt.Errorf("must be a list of SLA decisions like `- {type: sla.breached, metric: first_response}`")
		}
		for _, e := range l {
			m, ok := e.(map[string]any)
			if !ok {
				return fmt.Errorf("each entry is a mapping like `{type: sla.breached, metric: first_response}`")
			}
			for k, v := range m {
				if !contains(firedKeys, k) {
					return fmt.Errorf("unknown key %q in a fired entry (known: %s)", k, strings.Join(firedKeys, ", "))
				}
				if k != "type" && k != "metric" && k != "policy" && k != "at" && k != "due_at" {
					if err := p.checkExpect(k, v); err != nil {
						return fmt.Errorf("%s: %w", k, err)
					}
				}
			}
		}
	case "duplicate":
		if _, ok := want.(bool); !ok {
			return fmt.Errorf("must be true or false")
		}
	case "assignments":
		if _, ok := want.([]any); !ok {
			return fmt.Errorf("must be a list of {conversation, agent}")
		}
	}
	return nil
}

var actionMeta = []string{"outcome", "reason", "error", "result", "rule"}

// splitAction separates an expected action into its type, its params and
// its meta keys (outcome, reason, error, result, rule).
func splitAction(e any) (string, map[string]any, error) {
	switch v := e.(type) {
	case string:
		return v, map[string]any{}, nil
	case map[string]any:
		typ := ""
		out := map[string]any{}
		for k, val := range v {
			if contains(actionMeta, k) {
				out["@"+k] = val
				continue
			}
			if typ != "" {
				return "", nil, fmt.Errorf("an expected action names one action type, got %q and %q (other keys may be %s)", typ, k, strings.Join(actionMeta, ", "))
			}
			typ = k
			if val != nil {
				params, ok := val.(map[string]any)
				if !ok {
					return "", nil, fmt.Errorf("%s: params must be a mapping", k)
				}
				for pk, pv := range params {
					out[pk] = pv
				}
			}
		}
		if typ == "" {
			return "", nil, fmt.Errorf("an expected action needs its type, like `- reply: {text: ...}`")
		}
		return typ, out, nil
	}
	return "", nil, fmt.Errorf("an expected action is a mapping like `- reply: {text: ...}`")
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// match compares a wanted value with an actual, JSON-shaped one. Mappings
// match when every wanted key matches; a wanted {contains: s} or
// {matches: re} matches strings by substring or regular expression.
func match(want, got any) (bool, error) {
	switch w := want.(type) {
	case map[string]any:
		if len(w) == 1 {
			if sub, ok := w["contains"].(string); ok {
				s, isStr := got.(string)
				return isStr && strings.Contains(s, sub), nil
			}
			if re, ok := w["matches"].(string); ok {
				rx, err := regexp.Compile(re)
				if err != nil {
					return false, fmt.Errorf("matches: %w", err)
				}
				s, isStr := got.(string)
				return isStr && rx.MatchString(s), nil
			}
		}
		g, ok := got.(map[string]any)
		if !ok {
			return false, nil
		}
		for k, wv := range w {
			ok, err := match(wv, g[k])
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case []any:
		g, ok := got.([]any)
		if len(w) == 0 {
			return got == nil || (ok && len(g) == 0), nil // [] also means "none"
		}
		if !ok || len(g) != len(w) {
			return false, nil
		}
		for i := range w {
			ok, err := match(w[i], g[i])
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case nil:
		return got == nil || got == "", nil
	case bool:
		// Decisions leave false flags out (omitempty): missing is false.
		g, ok := got.(bool)
		return (ok && g == w) || (!w && got == nil), nil
	case string:
		g, ok := got.(string)
		return ok && g == w, nil
	}
	return fmt.Sprint(want) == fmt.Sprint(got), nil
}

// show prints a value in the compact form failures use.
func show(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // failures quote expressions: keep && and >= readable
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func jsonShape(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// validState checks a test's starting state the way explain --state is
// checked, with the field named when its type is wrong.
func validState(m map[string]any) error {
	b, _ := json.Marshal(m)
	var conv schemas.Conversation
	if err := json.Unmarshal(b, &conv); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: want %s, not %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	return engine.ValidateState(&conv)
}
