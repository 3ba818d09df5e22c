package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

type explainCmd struct {
	Rules  string `required:"" help:"Rule directory."`
	Event  string `required:"" help:"File holding one JSON event, or - for standard input."`
	State  string `help:"JSON file with the conversation's state before the event: a conversation object, a decision line from replay, or {conversation, contact, agents}."`
	Format string `help:"Output format: text or json." enum:"text,json" default:"text"`
}

// clauseReport is one top-level && / || operand of a rule's when.
type clauseReport struct {
	Clause string `json:"clause"`
	Value  any    `json:"value,omitempty"`
	Error  string `json:"error,omitempty"`
	// Skipped marks a clause after the one that decided the && or ||:
	// the engine never evaluated it, so neither is its value shown.
	Skipped bool `json:"not_evaluated,omitempty"`
}

// ruleReport is explain's account of one candidate rule.
type ruleReport struct {
	Rule      string         `json:"rule"`
	Pos       string         `json:"position"`
	Priority  int            `json:"priority"`
	Stop      bool           `json:"stop,omitempty"`
	When      string         `json:"when,omitempty"`
	Outcome   string         `json:"outcome"` // matched, not_matched, error, not_evaluated
	Error     string         `json:"error,omitempty"`
	StoppedBy string         `json:"stopped_by,omitempty"`
	Operator  string         `json:"operator,omitempty"`
	Clauses   []clauseReport `json:"clauses,omitempty"`
}

// policyReport is explain's account of one SLA policy after the event.
type policyReport struct {
	Policy  string `json:"policy"`
	Pos     string `json:"position"`
	When    string `json:"when,omitempty"`
	Applies bool   `json:"applies"`
	Chosen  bool   `json:"chosen,omitempty"`
	Error   string `json:"error,omitempty"`
}

type explainReport struct {
	Event    schemas.Event    `json:"event"`
	RuleSet  string           `json:"ruleset"`
	Rules    []ruleReport     `json:"rules"`
	Disabled []string         `json:"disabled,omitempty"`
	SLA      []policyReport   `json:"sla,omitempty"`
	Decision schemas.Decision `json:"decision"`
}

type stateFile struct {
	Conversation json.RawMessage   `json:"conversation"`
	Contact      *schemas.Contact  `json:"contact"`
	Agents       map[string]string `json:"agents"`
}

func (c *explainCmd) Run(io stdio, code *int) error {
	set, err := loadRules(c.Rules, io)
	if err != nil {
		return err
	}
	ev, err := readEvent(c.Event, io)
	if err != nil {
		return err
	}
	eng := engine.New()
	if c.State != "" {
		if err := seedState(eng, set, c.State, ev, io); err != nil {
			return err
		}
	}
	rep := explainReport{Event: *ev, RuleSet: set.Version()}
	eng.Trace = func(t engine.RuleTrace) {
		r := t.Rule
		rr := ruleReport{Rule: r.Name, Pos: r.Pos.String(), Priority: r.Priority, Stop: r.Stop, When: r.When}
		switch {
		case t.Err != nil:
			rr.Outcome, rr.Error = "error", t.Err.Error()
		case t.Matched:
			rr.Outcome = "matched"
		default:
			rr.Outcome = "not_matched"
		}
		clauses, op := r.Clauses()
		rr.Operator = op
		decided := false
		for _, cl := range clauses {
			if decided {
				rr.Clauses = append(rr.Clauses, clauseReport{Clause: cl.Text, Skipped: true})
				continue
			}
			v, err := cl.Eval(t.Env)
			cr := clauseReport{Clause: cl.Text, Value: v}
			if err != nil {
				cr.Value, cr.Error = nil, err.Error()
			}
			rr.Clauses = append(rr.Clauses, cr)
			// && stops at the first false, || at the first true, and both
			// at an error, as the engine's evaluation does.
			b, isBool := v.(bool)
			decided = err != nil || (isBool && ((op == "&&" && !b) || (op == "||" && b)))
		}
		rep.Rules = append(rep.Rules, rr)
	}
	eng.Skipped = func(r, by *rules.Rule) {
		rep.Rules = append(rep.Rules, ruleReport{Rule: r.Name, Pos: r.Pos.String(), Priority: r.Priority, Stop: r.Stop, When: r.When, Outcome: "not_evaluated", StoppedBy: by.Name})
	}
	for _, r := range set.Rules() {
		if !r.Enabled && contains(r.On, ev.Type) {
			rep.Disabled = append(rep.Disabled, r.Name)
		}
	}
	d, err := eng.Process(set, ev)
	if err != nil {
		return usageError{err}
	}
	rep.Decision = d
	chosen := false
	for _, pc := range eng.CheckPolicies(set, ev) {
		pr := policyReport{Policy: pc.Policy.Name, Pos: pc.Policy.Pos.String(), When: pc.Policy.When, Applies: pc.Applies}
		if pc.Err != nil {
			pr.Error = pc.Err.Error()
		}
		if pc.Applies && !chosen {
			pr.Chosen, chosen = true, true
		}
		rep.SLA = append(rep.SLA, pr)
	}
	if c.Format == "json" {
		enc := json.NewEncoder(io.out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printExplain(io.out, rep)
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func readEvent(name string, io stdio) (*schemas.Event, error) {
	in, err := openInput(name, io)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	data, err := readAll(in)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var ev schemas.Event
	if field, err := decodeEvent(bytes.TrimSpace(data), &ev); field != "" {
		return nil, usagef("%s: unknown field %s in the event", name, field)
	} else if err != nil {
		return nil, usagef("%s: not a JSON event: %v", name, err)
	}
	if err := engine.Validate(&ev); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	return &ev, nil
}

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }

func seedState(eng *engine.Engine, set *rules.Set, name string, ev *schemas.Event, io stdio) error {
	in, err := openInput(name, io)
	if err != nil {
		return err
	}
	defer in.Close()
	data, err := readAll(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return usagef("%s: not a JSON state: %v", name, err)
	}
	convJSON := []byte(sf.Conversation)
	if len(bytes.TrimSpace(convJSON)) == 0 || convJSON[0] != '{' {
		convJSON = data // the whole file is the conversation
	}
	var conv schemas.Conversation
	dec := json.NewDecoder(bytes.NewReader(convJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&conv); err != nil {
		return usagef("%s: not a conversation: %v", name, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := engine.ValidateState(&conv); err != nil {
		return usagef("%s: %v", name, err)
	}
	if ev.Conversation != "" {
		conv.ID = ev.Conversation
	}
	if conv.OpenedAt.IsZero() {
		conv.OpenedAt = ev.At
	}
	for id, st := range sf.Agents {
		eng.SetAgentStatus(id, st)
	}
	contact := sf.Contact
	if contact == nil && conv.Contact != "" {
		contact = &schemas.Contact{ID: conv.Contact}
	}
	eng.Seed(set, conv, contact)
	return nil
}

func printExplain(w io.Writer, rep explainReport) {
	ev := rep.Event
	fmt.Fprintf(w, "event %s (%s) at %s", ev.ID, ev.Type, ev.At.Format("2006-01-02T15:04:05Z07:00"))
	if ev.Conversation != "" {
		fmt.Fprintf(w, ", conversation %s", ev.Conversation)
	}
	fmt.Fprintf(w, "\nrule set %s\n", rep.RuleSet)
	if rep.Decision.Duplicate {
		fmt.Fprintln(w, "\nduplicate event: nothing evaluated")
		return
	}
	if len(rep.Rules) == 0 {
		fmt.Fprintf(w, "\nno enabled rule listens to %s\n", ev.Type)
	}
	fmt.Fprintln(w)
	for _, r := range rep.Rules {
		label := map[string]string{"matched": "MATCHED", "not_matched": "no match", "error": "ERROR", "not_evaluated": "skipped"}[r.Outcome]
		extra := fmt.Sprintf("priority %d", r.Priority)
		if r.Stop {
			extra += ", stop"
		}
		fmt.Fprintf(w, "%-9s %s  (%s)  %s\n", label, r.Rule, extra, r.Pos)
		if r.Outcome == "not_evaluated" {
			fmt.Fprintf(w, "          not evaluated: %q matched first and stops\n", r.StoppedBy)
			continue
		}
		if r.When == "" {
			fmt.Fprintln(w, "          when: (none: always matches)")
		} else {
			fmt.Fprintf(w, "          when: %s\n", oneLine(r.When))
		}
		if r.Error != "" {
			fmt.Fprintf(w, "          error: %s\n", oneLine(r.Error))
		}
		if len(r.Clauses) > 1 {
			for _, c := range r.Clauses {
				if c.Skipped {
					fmt.Fprintf(w, "            %-6s %s  (not evaluated: decided before it)\n", "-", c.Clause)
					continue
				}
				if c.Error != "" {
					fmt.Fprintf(w, "            %-6s %s\n                   error: %s\n", "ERROR", c.Clause, oneLine(c.Error))
					continue
				}
				fmt.Fprintf(w, "            %-6s %s\n", fmt.Sprint(c.Value), c.Clause)
			}
			fmt.Fprintf(w, "            (joined by %s)\n", r.Operator)
		}
	}
	for _, n := range rep.Disabled {
		fmt.Fprintf(w, "%-9s %s  (enabled: false)\n", "disabled", n)
	}
	d := rep.Decision
	fmt.Fprintln(w)
	if len(d.Actions) == 0 {
		fmt.Fprintln(w, "actions: none")
	} else {
		fmt.Fprintln(w, "actions:")
		for _, a := range d.Actions {
			params, _ := json.Marshal(a.Params)
			line := fmt.Sprintf("  %s/%s %s -> %s", a.Rule, a.Type, params, a.Outcome)
			if a.Reason != "" {
				line += " (" + a.Reason + ")"
			}
			if a.Error != "" {
				line += " (" + a.Error + ")"
			}
			if len(a.Result) > 0 {
				res, _ := json.Marshal(a.Result)
				line += " " + string(res)
			}
			fmt.Fprintln(w, line)
		}
	}
	if c := d.Conversation; c != nil {
		fmt.Fprintf(w, "conversation after: status=%s handler=%s assignee=%q team=%q priority=%s tags=%v bot_turns=%d escalated=%v\n",
			c.Status, c.Handler, c.Assignee, c.Team, c.Priority, c.Tags, c.BotTurns, c.Escalated)
	}
	if len(rep.SLA) > 0 {
		fmt.Fprintln(w, "\nSLA policies after the event (the first that applies is chosen):")
		for _, p := range rep.SLA {
			label := "no"
			switch {
			case p.Error != "":
				label = "ERROR"
			case p.Chosen:
				label = "CHOSEN"
			case p.Applies:
				label = "applies"
			}
			when := p.When
			if when == "" {
				when = "(none: always applies)"
			}
			fmt.Fprintf(w, "  %-8s %s  when: %s  %s\n", label, p.Policy, oneLine(when), p.Pos)
			if p.Error != "" {
				fmt.Fprintf(w, "           error: %s\n", oneLine(p.Error))
			}
		}
		if c := d.Conversation; c != nil {
			for _, m := range []struct {
				name string
				m    schemas.SLAMetric
			}{{"first_response", c.SLA.FirstResponse}, {"next_response", c.SLA.NextResponse}, {"resolution", c.SLA.Resolution}} {
				if m.m.State == "" {
					continue
				}
				line := fmt.Sprintf("  %-15s %s", m.name, m.m.State)
				if !m.m.DueAt.IsZero() {
					line += ", due " + m.m.DueAt.Format(time.RFC3339)
				}
				if m.m.Breached {
					line += ", BREACHED"
				}
				fmt.Fprintln(w, line)
			}
		}
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
