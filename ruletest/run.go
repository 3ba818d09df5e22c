package ruletest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// Failure is one unmet expectation.
type Failure struct {
	Pos  rules.Pos
	Msg  string
	Want string
	Got  string
}

func (f Failure) String() string {
	if f.Want == "" && f.Got == "" {
		return fmt.Sprintf("%s: %s", f.Pos, f.Msg)
	}
	return fmt.Sprintf("%s: %s\n        want: %s\n         got: %s", f.Pos, f.Msg, f.Want, f.Got)
}

// Result is the outcome of one test.
type Result struct {
	Case     *Case
	Failures []Failure
}

// Passed reports whether every expectation held.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Run runs every test of the suite against set, each on fresh state.
func (s *Suite) Run(set *rules.Set) []Result {
	out := make([]Result, 0, len(s.Tests))
	for _, c := range s.Tests {
		out = append(out, c.Run(set))
	}
	return out
}

// Run runs one test on fresh state.
func (c *Case) Run(set *rules.Set) Result {
	res := Result{Case: c}
	eng := engine.New()
	for id, st := range c.Agents {
		if set.Agent(id) == nil {
			res.Failures = append(res.Failures, Failure{Pos: c.Pos, Msg: fmt.Sprintf("agents: %q is not a member of any team", id)})
		}
		eng.SetAgentStatus(id, st)
	}
	clock := c.Start
	if c.State != nil {
		var conv schemas.Conversation
		b, _ := json.Marshal(c.State)
		if err := json.Unmarshal(b, &conv); err != nil {
			res.Failures = append(res.Failures, Failure{Pos: c.Pos, Msg: fmt.Sprintf("state: %v", err)})
			return res
		}
		if conv.ID == "" {
			conv.ID = "c1"
			if len(c.Events) > 0 {
				conv.ID = c.Events[0].Event.Conversation
			}
		}
		if conv.OpenedAt.IsZero() {
			conv.OpenedAt = clock
		}
		var contact *schemas.Contact
		if len(c.Events) > 0 && c.Events[0].Event.Contact != nil {
			contact = c.Events[0].Event.Contact
		}
		eng.Seed(set, conv, contact)
	}
	for i, st := range c.Events {
		if st.IsWait {
			clock = clock.Add(st.Wait)
			fired := eng.FireDue(set, clock)
			res.Failures = append(res.Failures, checkFired(set, st, i, fired, eng)...)
			continue
		}
		ev := st.Event
		if st.HasAt {
			clock = ev.At
		} else {
			if i > 0 {
				step := st.After
				if !st.HasAfter {
					step = DefaultStep
				}
				clock = clock.Add(step)
			} else {
				clock = clock.Add(st.After)
			}
			ev.At = clock
		}
		if err := engine.Validate(&ev); err != nil {
			res.Failures = append(res.Failures, Failure{Pos: st.Pos, Msg: fmt.Sprintf("event %d: %v", i+1, err)})
			continue
		}
		// Deadlines due by this event's time fire first, as in replay.
		fired := eng.FireDue(set, ev.At)
		res.Failures = append(res.Failures, checkFired(set, st, i, fired, eng)...)
		d, err := eng.Process(set, &ev)
		if err != nil {
			res.Failures = append(res.Failures, Failure{Pos: st.Pos, Msg: fmt.Sprintf("event %d: %v", i+1, err)})
			continue
		}
		res.Failures = append(res.Failures, check(set, st, i, d, eng)...)
	}
	return res
}

// checkFired checks the SLA decisions that fired before step i against its
// expect: fired:, entry by entry, in order. Without fired: they are held to
// the same standard as any decision: no unexpected errors or failures.
func checkFired(set *rules.Set, st *Step, i int, fired []schemas.Decision, eng *engine.Engine) []Failure {
	var want []any
	var pos rules.Pos
	given := false
	for _, e := range st.Expect {
		if e.Key == "fired" {
			want, pos, given = e.Want.([]any), e.Pos, true
		}
	}
	var fails []Failure
	where := fmt.Sprintf("step %d", i+1)
	if given && len(want) != len(fired) {
		got := []string{}
		for _, d := range fired {
			got = append(got, d.Event.Type+" "+d.Event.SLA.Metric+" at "+d.Event.At.UTC().Format(time.RFC3339))
		}
		return []Failure{{Pos: pos, Msg: where + ": fired SLA events differ in number", Want: show(want), Got: show(got)}}
	}
	for j, d := range fired {
		sub := &Step{Pos: st.Pos}
		if given {
			sub.Pos = pos
			m := want[j].(map[string]any)
			info := map[string]any{"type": d.Event.Type, "metric": d.Event.SLA.Metric, "policy": d.Event.SLA.Policy,
				"at": d.Event.At.UTC().Format(time.RFC3339Nano), "due_at": d.Event.SLA.DueAt.UTC().Format(time.RFC3339Nano)}
			for _, k := range []string{"type", "metric", "policy", "at", "due_at"} {
				if w, ok := m[k]; ok {
					if ok, _ := match(w, info[k]); !ok {
						fails = append(fails, Failure{Pos: pos, Msg: fmt.Sprintf("%s: fired %d: %s differs", where, j+1, k), Want: show(w), Got: show(info[k])})
					}
				}
			}
			for _, k := range sortedKeys(m) {
				if k != "type" && k != "metric" && k != "policy" && k != "at" && k != "due_at" {
					sub.Expect = append(sub.Expect, Expectation{Key: k, Pos: pos, Want: m[k]})
				}
			}
		}
		for _, f := range check(set, sub, i, d, eng) {
			f.Msg = fmt.Sprintf("%s: fired %d (%s %s): %s", where, j+1, d.Event.Type, d.Event.SLA.Metric, strings.SplitN(f.Msg, ": ", 2)[1])
			fails = append(fails, f)
		}
	}
	return fails
}

func check(set *rules.Set, st *Step, i int, d schemas.Decision, eng *engine.Engine) []Failure {
	var fails []Failure
	prefix := fmt.Sprintf("event %d (%s)", i+1, d.Event.Type)
	fail := func(e Expectation, msg string, want, got any) {
		fails = append(fails, Failure{Pos: e.Pos, Msg: prefix + ": " + msg, Want: show(want), Got: show(got)})
	}
	// A name that is not in the rule set makes an expectation that can
	// never fail (not_matched: [humann]) or never pass: say so.
	for _, e := range st.Expect {
		switch e.Key {
		case "matched", "not_matched", "errors":
			for _, n := range e.Want.([]any) {
				if name := n.(string); name != "" && set.Rule(name) == nil && !strings.HasPrefix(name, "sla:") {
					fails = append(fails, Failure{Pos: e.Pos, Msg: fmt.Sprintf("%s: %s names %q, which is not a rule of this rule set", prefix, e.Key, name)})
				}
			}
		case "actions", "actions_include":
			for _, w := range e.Want.([]any) {
				if typ, _, _ := splitAction(w); typ != "" {
					if _, ok := actions.Default.Lookup(typ); !ok {
						fails = append(fails, Failure{Pos: e.Pos, Msg: fmt.Sprintf("%s: %s names %q, which is not an action", prefix, e.Key, typ)})
					}
				}
			}
		}
	}
	checkedErrors := false
	for _, e := range st.Expect {
		switch e.Key {
		case "matched":
			if ok, _ := match(e.Want, jsonShape(d.Matched)); !ok {
				fail(e, "matched rules differ", e.Want, d.Matched)
			}
		case "not_matched":
			for _, n := range e.Want.([]any) {
				if contains(d.Matched, n.(string)) {
					fail(e, fmt.Sprintf("rule %q matched", n), "not "+n.(string), d.Matched)
				}
			}
		case "errors":
			checkedErrors = true
			var got []string
			for _, re := range d.Errors {
				got = append(got, re.Rule)
			}
			if ok, _ := match(e.Want, jsonShape(got)); !ok && !(len(e.Want.([]any)) == 0 && len(got) == 0) {
				fail(e, "rules with run-time errors differ", e.Want, d.Errors)
			}
		case "actions", "actions_include":
			fails = append(fails, checkActions(e, prefix, d.Actions)...)
		case "conversation":
			got := jsonShape(d.Conversation)
			want := e.Want.(map[string]any)
			for _, k := range sortedKeys(want) {
				w := want[k]
				var gv any
				if m, ok := got.(map[string]any); ok {
					gv = m[k]
				}
				ok, err := match(w, gv)
				if err != nil {
					fail(e, err.Error(), w, gv)
				} else if !ok {
					fail(e, "conversation."+k+" differs", w, gv)
				}
			}
		case "contact":
			var contact schemas.Contact
			if d.Conversation != nil {
				contact, _ = eng.Contact(d.Conversation.Contact)
			}
			got := jsonShape(contact)
			m, _ := got.(map[string]any)
			for k, w := range e.Want.(map[string]any) {
				gv := m[k]
				if w == false && gv == nil {
					continue // omitempty
				}
				if ok, _ := match(w, gv); !ok {
					fail(e, "contact."+k+" differs", w, gv)
				}
			}
		case "duplicate":
			if d.Duplicate != e.Want.(bool) {
				fail(e, "duplicate differs", e.Want, d.Duplicate)
			}
		case "assignments":
			if ok, _ := match(e.Want, jsonShape(d.Assignments)); !ok {
				fail(e, "queue assignments differ", e.Want, d.Assignments)
			}
		}
	}
	// An action that failed (a template that cannot render, say) is a bug
	// in the rules unless the test says it expects it.
	if !expectsFailure(st) {
		for i, a := range d.Actions {
			if a.Outcome == schemas.OutcomeFailed {
				fails = append(fails, Failure{Pos: st.Pos, Msg: fmt.Sprintf("%s: action %d (%s/%s) failed unexpectedly (expect it with outcome: failed if intended)", prefix, i+1, a.Rule, a.Type), Want: "no failed action", Got: show(a)})
			}
		}
	}
	// A run-time error nobody expected is a failing rule, not a detail.
	if !checkedErrors && len(d.Errors) > 0 {
		fails = append(fails, Failure{Pos: st.Pos, Msg: prefix + ": unexpected run-time errors (list the rules under expect: errors: if they are intended)", Want: "[]", Got: show(d.Errors)})
	}
	return fails
}

func checkActions(e Expectation, prefix string, got []schemas.ActionRecord) []Failure {
	want := e.Want.([]any)
	describe := func(recs []schemas.ActionRecord) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r.Rule + "/" + r.Type
		}
		return out
	}
	matches := func(w any, r schemas.ActionRecord) (bool, string) {
		typ, params, _ := splitAction(w)
		if typ != r.Type {
			return false, "type"
		}
		actual := jsonShape(r.Params).(map[string]any)
		meta := map[string]any{"outcome": r.Outcome, "reason": r.Reason, "error": r.Error, "rule": r.Rule, "result": jsonShape(r.Result)}
		for k, wv := range params {
			var gv any
			if strings.HasPrefix(k, "@") {
				gv = meta[k[1:]]
			} else {
				gv = actual[k]
			}
			if ok, _ := match(wv, gv); !ok {
				return false, strings.TrimPrefix(k, "@")
			}
		}
		return true, ""
	}
	var fails []Failure
	if e.Key == "actions" {
		if len(want) != len(got) {
			return []Failure{{Pos: e.Pos, Msg: prefix + ": actions differ in number", Want: show(want), Got: show(describe(got))}}
		}
		for i := range want {
			if ok, field := matches(want[i], got[i]); !ok {
				fails = append(fails, Failure{Pos: e.Pos, Msg: fmt.Sprintf("%s: action %d differs in %s", prefix, i+1, field), Want: show(want[i]), Got: show(got[i])})
			}
		}
		return fails
	}
	// actions_include: each wanted action appears, in this order.
	j := 0
	for _, w := range want {
		found := false
		for ; j < len(got); j++ {
			if ok, _ := matches(w, got[j]); ok {
				found = true
				j++
				break
			}
		}
		if !found {
			fails = append(fails, Failure{Pos: e.Pos, Msg: prefix + ": no matching action (in order)", Want: show(w), Got: show(got)})
			break
		}
	}
	return fails
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expectsFailure reports whether the step expects some action to fail.
func expectsFailure(st *Step) bool {
	for _, e := range st.Expect {
		if e.Key != "actions" && e.Key != "actions_include" {
			continue
		}
		for _, w := range e.Want.([]any) {
			if _, params, _ := splitAction(w); params["@outcome"] == schemas.OutcomeFailed {
				return true
			}
		}
	}
	return false
}
