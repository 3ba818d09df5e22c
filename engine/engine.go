// Package engine evaluates events against a compiled rule set: it applies
// each event's own effects, runs the candidate rules in order with state
// flowing forward, fires their actions, assigns conversations among
// agents, and returns one decision per event. It never reads the wall
// clock: the event's time is the only clock, which is what lets replay,
// tests, explain and serve agree.
package engine

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// Window is how long after a customer's message the business may send
// free-form messages (WhatsApp's customer service window).
const Window = 24 * time.Hour

// RuleTrace is what a tracer learns about one candidate rule.
type RuleTrace struct {
	Rule    *rules.Rule
	Env     *rules.Env // the environment as the rule saw it; valid during the call
	Matched bool
	Err     error
}

// Engine evaluates events one at a time against its state. It is not safe
// for concurrent use: the daemon serialises events per conversation in
// front of it.
type Engine struct {
	mem    *Memory // the engine's own state, for Process and FireDue
	env    *rules.Env
	envSet *rules.Set

	// Trace, when set, is called for every candidate rule after its when is
	// evaluated and before its actions fire. explain uses it.
	Trace func(RuleTrace)
	// Skipped, when set, is called for candidate rules not evaluated
	// because an earlier rule stopped the event.
	Skipped func(r *rules.Rule, stoppedBy *rules.Rule)
}

// New returns an engine with empty in-memory state.
func New() *Engine { return &Engine{mem: NewMemory()} }

// NewStateless returns an engine without state of its own, for a daemon
// worker that evaluates every event with Eval against a store's unit of
// work.
func NewStateless() *Engine { return &Engine{} }

// ErrInvalidEvent wraps every reason an event is refused before evaluation.
var ErrInvalidEvent = errors.New("invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// Validate checks the fields every event needs.
func Validate(ev *schemas.Event) error {
	switch {
	case ev.ID == "":
		return invalid("id is required")
	case ev.Type == "":
		return invalid("type is required")
	case !schemas.IsEventType(ev.Type):
		return invalid("unknown type %q", ev.Type)
	case ev.At.IsZero():
		return invalid("at is required (an RFC 3339 time)")
	}
	switch ev.Type {
	case schemas.AgentStatus:
		if ev.Agent == "" {
			return invalid("agent.status needs agent")
		}
		switch ev.Status {
		case schemas.AgentOnline, schemas.AgentAway, schemas.AgentOffline:
		default:
			return invalid("agent.status needs status online, away or offline, not %q", ev.Status)
		}
	case schemas.ContactOptedOut, schemas.ContactOptedIn:
		if ev.Conversation == "" && (ev.Contact == nil || ev.Contact.ID == "") {
			return invalid("%s needs conversation or contact.id", ev.Type)
		}
	default:
		if ev.Conversation == "" {
			return invalid("%s needs conversation", ev.Type)
		}
	}
	if ev.Type == schemas.ConversationAssigned && ev.Agent == "" {
		return invalid("conversation.assigned needs agent, the new assignee")
	}
	if ev.Type == schemas.BotAnswered && (ev.Confidence < 0 || ev.Confidence > 1) {
		return invalid("confidence must be between 0 and 1, not %v", ev.Confidence)
	}
	return nil
}

// ValidateState checks a conversation given as a starting state (explain
// --state, a rule test's state:): the values the engine could have
// produced, so a typo does not quietly set up an impossible conversation.
func ValidateState(c *schemas.Conversation) error {
	check := func(field, v string, allowed []string) error {
		if v == "" {
			return nil
		}
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%s %q is not one of %v", field, v, allowed)
	}
	if err := check("status", c.Status, schemas.Statuses); err != nil {
		return err
	}
	if err := check("handler", c.Handler, []string{schemas.HandlerBot, schemas.HandlerHuman}); err != nil {
		return err
	}
	if err := check("priority", c.Priority, schemas.Priorities); err != nil {
		return err
	}
	if c.BotTurns < 0 || c.Messages < 0 {
		return fmt.Errorf("bot_turns and messages cannot be negative")
	}
	// A decision line carries conversation.sla; the clocks behind it are
	// not in it, so it is dropped and the clocks start from the event.
	c.SLA = schemas.SLAStatus{}
	return nil
}

// pass is one event's evaluation: the state it changes and the decision
// it builds. It implements actions.Context for the actions it fires.
type pass struct {
	e       *Engine
	st      State
	sh      *Shared // the shared state, once this pass took it
	err     error   // the first State error; the pass then changes nothing more
	set     *rules.Set
	ev      *schemas.Event
	conv    *Conv
	contact *schemas.Contact
	d       *schemas.Decision
	rule    *rules.Rule
	action  int
	phase   int // phaseBefore, phaseRules or phaseAfter

	policyErr map[string]bool // SLA policies whose when failed in this pass
}

const (
	phaseBefore = iota
	phaseRules
	phaseAfter
)

// Process evaluates one event against the engine's own state and returns
// its decision. An event that is malformed is refused with an error
// wrapping ErrInvalidEvent and changes nothing.
func (e *Engine) Process(set *rules.Set, ev *schemas.Event) (schemas.Decision, error) {
	return e.Eval(e.mem, set, ev)
}

// ErrState wraps every error a State returned during an evaluation: the
// evaluation stopped there, and the caller must throw its changes away.
var ErrState = errors.New("state")

// Eval evaluates one event against st and returns its decision. An event
// that is malformed is refused with an error wrapping ErrInvalidEvent and
// changes nothing; a State failure ends it with an error wrapping
// ErrState, after which st holds a partial evaluation to throw away.
func (e *Engine) Eval(st State, set *rules.Set, ev *schemas.Event) (schemas.Decision, error) {
	if err := Validate(ev); err != nil {
		return schemas.Decision{}, err
	}
	// One clock for every record: whatever offset an event came with, its
	// time and everything derived from it print in UTC.
	ev.At = ev.At.UTC()
	d := schemas.Decision{Event: *ev}
	dup, err := st.Seen(ev.ID)
	if err != nil {
		return schemas.Decision{}, fmt.Errorf("%w: %w", ErrState, err)
	}
	if dup {
		d.Duplicate = true
		return d, nil
	}
	d.RuleSet = set.Version()
	d.Matched, d.Actions, d.Errors = []string{}, []schemas.ActionRecord{}, []schemas.RuleError{}

	p := &pass{e: e, st: st, set: set, ev: ev, d: &d}
	p.load()
	if p.err != nil {
		return schemas.Decision{}, p.err
	}
	p.before()

	if e.envSet != set {
		e.env, e.envSet = set.NewEnv(), set
	}
	env := e.env
	convState, contact := p.views()
	env.Bind(ev, convState, contact, &p.convOrEmpty().assigneeView, p.eta())
	p.phase = phaseBefore
	p.slaUpdate()
	env.SetETA(p.eta())
	p.phase = phaseRules

	candidates := set.Candidates(ev.Type)
	for i, r := range candidates {
		ok, err := r.Match(env)
		if e.Trace != nil {
			e.Trace(RuleTrace{Rule: r, Env: env, Matched: ok, Err: err})
		}
		if err != nil {
			d.Errors = append(d.Errors, schemas.RuleError{Rule: r.Name, Error: err.Error()})
			continue
		}
		if !ok {
			continue
		}
		d.Matched = append(d.Matched, r.Name)
		p.rule = r
		for ai, a := range r.Actions {
			p.action = ai
			d.Actions = append(d.Actions, p.fire(a, env))
			p.slaUpdate()
			env.SetETA(p.eta())
		}
		if r.Stop {
			if e.Skipped != nil {
				for _, rest := range candidates[i+1:] {
					e.Skipped(rest, r)
				}
			}
			break
		}
	}

	p.after()
	p.phase = phaseAfter
	p.slaUpdate()
	if p.err != nil {
		return schemas.Decision{}, p.err
	}
	if p.conv != nil {
		c := p.conv.Conversation
		c.Tags = append([]string{}, c.Tags...)
		d.Conversation = &c
	}
	return d, nil
}

// fail keeps the first State error; the evaluation ends with it.
func (p *pass) fail(err error) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %w", ErrState, err)
	}
}

// shared returns the shared state, taking it from the State the first
// time. After a failure it returns an empty one to finish the pass on;
// the pass's error throws the whole evaluation away.
func (p *pass) shared() *Shared {
	if p.sh != nil {
		return p.sh
	}
	sh, err := p.st.Shared()
	if err != nil {
		p.fail(err)
		sh = NewShared()
	}
	p.sh = sh
	return sh
}

func (p *pass) fire(a *rules.Action, env *rules.Env) schemas.ActionRecord {
	rec := schemas.ActionRecord{Rule: p.rule.Name, Type: a.Type}
	params, err := a.Render(env)
	rec.Params = params
	if err != nil {
		rec.Outcome, rec.Error = schemas.OutcomeFailed, err.Error()
		return rec
	}
	// Only a Slack ping makes sense without a conversation (an agent went
	// offline, say); everything else acts on one.
	if p.conv == nil && a.Type != "notify" {
		rec.Outcome, rec.Reason = schemas.OutcomeSkipped, "no_conversation"
		return rec
	}
	res := a.Impl.Apply(p, params)
	rec.Outcome, rec.Reason, rec.Error, rec.Result = res.Outcome, res.Reason, res.Error, res.Result
	return rec
}

// load finds or creates the conversation and contact the event is about.
func (p *pass) load() {
	ev := p.ev
	if ev.Conversation != "" {
		c, err := p.st.Conversation(ev.Conversation)
		if err != nil {
			p.fail(err)
			return
		}
		if c == nil {
			c = NewConv(ev.Conversation, ev.At)
			if err := p.st.AddConversation(c); err != nil {
				p.fail(err)
				return
			}
		}
		p.conv = c
	}
	contactID := ""
	switch {
	case ev.Contact != nil && ev.Contact.ID != "":
		contactID = ev.Contact.ID
	case p.conv != nil && p.conv.Contact != "":
		contactID = p.conv.Contact
	case p.conv != nil:
		contactID = p.conv.ID
	}
	if contactID != "" {
		contact, err := p.st.Contact(contactID)
		if err != nil {
			p.fail(err)
			return
		}
		p.contact = contact
		if p.conv != nil {
			p.conv.Contact = contactID
			p.refreshAssignee()
		}
		if c := ev.Contact; c != nil {
			if c.Name != "" {
				p.contact.Name = c.Name
			}
			if c.Language != "" {
				p.contact.Language = c.Language
			}
			if c.Phone != "" {
				p.contact.Phone = c.Phone
			}
		}
	}
}

var emptyConv = &Conv{Conversation: schemas.Conversation{Tags: []string{}}}

func (p *pass) convOrEmpty() *Conv {
	if p.conv == nil {
		return emptyConv
	}
	return p.conv
}

func (p *pass) views() (*schemas.Conversation, *schemas.Contact) {
	contact := p.contact
	if contact == nil {
		contact = &schemas.Contact{}
	}
	if p.conv == nil {
		c := *emptyConv
		return &c.Conversation, contact
	}
	return &p.conv.Conversation, contact
}

// before applies the event's own effects, which rules then see.
func (p *pass) before() {
	ev, c := p.ev, p.conv
	switch ev.Type {
	case schemas.MessageReceived:
		if c.Status == schemas.StatusResolved {
			// A new stretch: the bot tries first again and rules decide
			// anew whom to bring in. The assignee goes while the status is
			// still resolved: the resolution already released the agent.
			p.setAssignee("")
			c.Status, c.Handler, c.BotTurns = schemas.StatusOpen, schemas.HandlerBot, 0
			c.Escalated, c.EscalationReason = false, ""
			c.OpenedAt = ev.At
			c.sla.newStretch()
		} else if c.Status == schemas.StatusPending {
			p.setStatus(schemas.StatusOpen)
		}
		c.Messages++
		// Latest, not most recently evaluated: Meta may redeliver an older
		// message after a newer one, and a time moved back would make the
		// conversation look answered (no first-response clock).
		if ev.At.After(c.LastCustomerMessageAt) {
			c.LastCustomerMessageAt = ev.At
		}
	case schemas.AgentReplied:
		if c.FirstResponseAt.IsZero() || ev.At.Before(c.FirstResponseAt) {
			c.FirstResponseAt = ev.At
		}
		if ev.At.After(c.LastAgentMessageAt) {
			c.LastAgentMessageAt = ev.At
		}
		c.Handler = schemas.HandlerHuman
		p.knownAgent()
		if c.Assignee == "" && ev.Agent != "" {
			p.setAssignee(ev.Agent)
			if a := p.set.Agent(ev.Agent); a != nil && c.Team == "" {
				c.Team = a.Team
			}
		}
	case schemas.AgentStatus:
		p.knownAgent()
		sh := p.shared()
		sh.agent(ev.Agent).Status = ev.Status
		sh.freed = true
	case schemas.ConversationAssigned:
		p.knownAgent()
		p.setAssignee(ev.Agent)
		// A person assigned by hand now handles it: the bot steps back, and
		// a conversation assigned before its first message is opened
		// straight to humans (its first-response clock starts with that
		// message).
		c.Handler = schemas.HandlerHuman
		if a := p.set.Agent(ev.Agent); a != nil {
			c.Team = a.Team
		}
	case schemas.ConversationResolved:
		p.setStatus(schemas.StatusResolved)
	case schemas.SLAWarning, schemas.SLABreached:
		p.slaEvent()
	case schemas.ContactOptedOut:
		p.contact.OptedOut = true
	case schemas.ContactOptedIn:
		p.contact.OptedOut = false
	}
	p.window()
}

// knownAgent notes, as an error of the event, an agent who is in no team:
// the event still applies (the inbox says what happened), but a misspelt
// id should not pass unnoticed.
func (p *pass) knownAgent() {
	if id := p.ev.Agent; id != "" && p.set.Agent(id) == nil {
		p.d.Errors = append(p.d.Errors, schemas.RuleError{Error: fmt.Sprintf("%s: agent %q is not a member of any team", p.ev.Type, id)})
	}
}

// after counts the bot's turn, drains team queues and refreshes derived
// fields.
func (p *pass) after() {
	// A bot answer whose rules resolved the conversation ended the stretch
	// it belonged to: the resolution's reset stands.
	if c := p.conv; c != nil && p.ev.Type == schemas.BotAnswered && c.Handler == schemas.HandlerBot &&
		c.Status != schemas.StatusResolved {
		c.BotTurns++
	}
	p.drain()
	p.window()
}

func (p *pass) window() {
	if c := p.conv; c != nil {
		c.WindowOpen = !c.LastCustomerMessageAt.IsZero() && p.ev.At.Sub(c.LastCustomerMessageAt) < Window &&
			!c.LastCustomerMessageAt.Equal(c.windowClosedAfter)
	}
}

// eta is what eta_minutes promises: the minutes left to the running
// first- or next-response deadline, or params.default_eta_minutes.
func (p *pass) eta() int {
	if m, ok := p.slaETA(); ok {
		return m
	}
	return p.set.DefaultETA()
}

// setAssignee changes the assignee, keeping agents' open counts true.
func (p *pass) setAssignee(agent string) {
	c := p.conv
	if c.Assignee == agent {
		return
	}
	open := c.Status != schemas.StatusResolved
	if c.Assignee != "" && open {
		sh := p.shared()
		sh.agent(c.Assignee).Open--
		sh.freed = true
	}
	c.Assignee = agent
	if agent != "" {
		if open {
			p.shared().agent(agent).Open++
		}
		p.dequeue()
	}
	p.refreshAssignee()
}

func (p *pass) refreshAssignee() {
	c := p.conv
	c.assigneeView = schemas.Assignee{}
	if c.Assignee == "" {
		return
	}
	c.assigneeView.ID = c.Assignee
	if a := p.set.Agent(c.Assignee); a != nil {
		c.assigneeView.Name, c.assigneeView.FirstName = a.Name, a.FirstName
	} else {
		c.assigneeView.Name, c.assigneeView.FirstName = c.Assignee, c.Assignee
	}
}

func (p *pass) setStatus(status string) {
	c := p.conv
	if c.Status == status {
		return
	}
	wasOpen := c.Status != schemas.StatusResolved
	isOpen := status != schemas.StatusResolved
	if c.Assignee != "" && wasOpen != isOpen {
		sh := p.shared()
		if isOpen {
			sh.agent(c.Assignee).Open++
		} else {
			sh.agent(c.Assignee).Open--
			sh.freed = true
		}
	}
	wasResolved := c.Status == schemas.StatusResolved
	c.Status = status
	if wasResolved && status != schemas.StatusResolved {
		// Reopened by hand (set_status): a new stretch, like a customer's
		// message after resolution starts one.
		c.OpenedAt = p.ev.At
		c.sla.newStretch()
	}
	if status == schemas.StatusResolved {
		c.BotTurns, c.Handler = 0, schemas.HandlerBot
		c.Escalated, c.EscalationReason = false, ""
		p.dequeue()
	}
}

func (p *pass) dequeue() {
	c := p.conv
	if !c.queued {
		return
	}
	c.waitTeam, c.waitReq = "", actions.AssignRequest{}
	for _, ts := range p.shared().teams {
		for i, q := range ts.Queue {
			if q.Conversation == c.ID {
				ts.Queue = append(ts.Queue[:i], ts.Queue[i+1:]...)
				break
			}
		}
	}
	c.queued = false
}

func (p *pass) enqueue(team string, req actions.AssignRequest) {
	c := p.conv
	if team == "" {
		return
	}
	ts := p.shared().team(team)
	for i := range ts.Queue {
		if ts.Queue[i].Conversation == c.ID {
			ts.Queue[i].Request = req
			c.waitReq = req
			return
		}
	}
	p.dequeue() // a conversation waits in one team's queue only
	ts.Queue = append(ts.Queue, QueueEntry{Conversation: c.ID, Since: p.ev.At, Request: req})
	c.queued, c.waitTeam, c.waitReq = true, team, req
}

// eligible reports whether agent a may take a conversation under req.
func (p *pass) eligible(sh *Shared, a *rules.Agent, req actions.AssignRequest) bool {
	st := sh.agentState(a.ID)
	return st.Status == schemas.AgentOnline &&
		(a.Capacity == 0 || st.Open < a.Capacity) &&
		a.HasSkills(req.Skills) && a.Speaks(req.Language) &&
		(req.Agent == "" || req.Agent == a.ID)
}

// pick chooses among a team's eligible members by the strategy, or nil.
func (p *pass) pick(sh *Shared, team *rules.Team, req actions.AssignRequest) *rules.Agent {
	n := len(team.Members)
	if n == 0 {
		return nil
	}
	start := 0
	if last := sh.lastGiven(team.Name); last != "" {
		for i, a := range team.Members {
			if a.ID == last {
				start = i + 1
				break
			}
		}
	}
	strategy := req.Strategy
	if strategy == "" {
		strategy = team.Strategy
	}
	var best *rules.Agent
	for k := 0; k < n; k++ {
		a := team.Members[(start+k)%n]
		if !p.eligible(sh, a, req) {
			continue
		}
		if strategy != "least_busy" {
			return a
		}
		if best == nil || sh.agentState(a.ID).Open < sh.agentState(best.ID).Open {
			best = a
		}
	}
	return best
}

// The methods below implement actions.Context.

func (p *pass) Conversation() *schemas.Conversation { return &p.conv.Conversation }

func (p *pass) Contact() *schemas.Contact { return p.contact }

func (p *pass) Escalate(reason string, _ int) {
	c := p.conv
	c.Handler, c.Escalated, c.EscalationReason = schemas.HandlerHuman, true, reason
}

func (p *pass) Assign(req actions.AssignRequest) (string, error) {
	c := p.conv
	teamName := req.Team
	if req.Agent != "" {
		a := p.set.Agent(req.Agent)
		if a == nil {
			return "", fmt.Errorf("unknown agent %q", req.Agent)
		}
		teamName = a.Team
	}
	team := p.set.Team(teamName)
	if team == nil {
		return "", fmt.Errorf("unknown team %q", teamName)
	}
	c.Team = team.Name
	// An online assignee who still fits keeps the conversation, capacity
	// aside (it already counts against it): customers should not bounce
	// between agents because a rule fired twice.
	if cur := p.set.Agent(c.Assignee); cur != nil && cur.Team == team.Name &&
		p.shared().agent(cur.ID).Status == schemas.AgentOnline &&
		cur.HasSkills(req.Skills) && cur.Speaks(req.Language) &&
		(req.Agent == "" || req.Agent == cur.ID) {
		return cur.ID, nil
	}
	if a := p.pick(p.shared(), team, req); a != nil {
		p.setAssignee(a.ID)
		p.shared().team(team.Name).LastGiven = a.ID
		return a.ID, nil
	}
	p.setAssignee("")
	p.enqueue(team.Name, req)
	return "", nil
}

func (p *pass) Unassign() {
	c := p.conv
	team := c.Team
	if team == "" {
		if a := p.set.Agent(c.Assignee); a != nil {
			team = a.Team
		}
	}
	p.setAssignee("")
	c.Team = team
	p.enqueue(team, actions.AssignRequest{Team: team})
}

func (p *pass) SetStatus(status string) { p.setStatus(status) }

func (p *pass) Note(text string) {
	p.conv.Notes = append(p.conv.Notes, Note{At: p.ev.At, Text: text, Author: "rule:" + p.rule.Name})
}

func (p *pass) Send(kind string, params map[string]any) {
	out := schemas.Outbound{
		Key:    p.ev.ID + "/" + p.rule.Name + "/" + strconv.Itoa(p.action),
		Kind:   kind,
		Params: params,
	}
	if p.conv != nil {
		out.Conversation, out.Contact = p.conv.ID, p.conv.Contact
	}
	p.d.Outbound = append(p.d.Outbound, out)
}

// drain assigns waiting conversations, oldest first, to agents who became
// eligible: capacity freed, an agent came online, a conversation left.
func (p *pass) drain() {
	// A pass that never took the shared state changed nothing that could
	// make an agent eligible; one whose conversation waits drains anyway,
	// because another unit of work may have skipped it while this one
	// held it (see State.Queued).
	if p.sh == nil {
		if p.conv == nil || !p.conv.queued {
			return
		}
		// Whether anyone is free for it is known from a snapshot, without
		// taking the shared state's lock (nearly always: nobody is).
		peek, err := p.st.Peek()
		if err != nil {
			p.fail(err)
			return
		}
		if !p.takerFor(peek, p.conv) {
			return
		}
	}
	sh := p.shared()
	// A waiting conversation found nobody eligible when it was queued, so
	// only freed capacity, a changed status or a new rule set can help it;
	// or, for this pass's own waiting conversation, an agent freed while
	// another unit skipped it. That is rare, so the queue is walked only
	// when someone could take this one now.
	if !sh.freed && sh.drainedWith == p.set && (p.conv == nil || !p.conv.queued || !p.takerFor(sh, p.conv)) {
		return
	}
	sh.freed, sh.drainedWith = false, p.set
	for _, team := range p.set.Teams() {
		ts := sh.teams[team.Name]
		if ts == nil || len(ts.Queue) == 0 {
			continue
		}
		for i := 0; i < len(ts.Queue) && p.err == nil; {
			q := ts.Queue[i]
			// Whether anyone could take it is known without the
			// conversation, which a store may have to fetch and lock: most
			// waiting conversations wait because nobody can.
			a := p.pick(sh, team, q.Request)
			if a == nil {
				i++
				continue
			}
			c := p.conv
			if c == nil || c.ID != q.Conversation {
				var err error
				if c, err = p.st.Queued(q.Conversation); err != nil {
					p.fail(err)
					return
				}
				if c == nil { // held elsewhere: its own unit drains it
					i++
					continue
				}
			}
			if c.Status == schemas.StatusResolved || c.Assignee != "" || !c.queued {
				// It left the queue without leaving the queue's list.
				ts.Queue = append(ts.Queue[:i], ts.Queue[i+1:]...)
				c.queued, c.waitTeam, c.waitReq = false, "", actions.AssignRequest{}
				continue
			}
			ts.Queue = append(ts.Queue[:i], ts.Queue[i+1:]...)
			c.queued, c.waitTeam, c.waitReq = false, "", actions.AssignRequest{}
			other := &pass{e: p.e, st: p.st, sh: sh, set: p.set, ev: p.ev, conv: c, d: p.d}
			other.setAssignee(a.ID)
			ts.LastGiven = a.ID
			p.d.Assignments = append(p.d.Assignments, schemas.Assignment{Conversation: c.ID, Agent: a.ID, Team: team.Name})
		}
	}
}

// takerFor reports whether an agent could take a waiting conversation now.
func (p *pass) takerFor(sh *Shared, c *Conv) bool {
	team := p.set.Team(c.waitTeam)
	return team != nil && p.pick(sh, team, c.waitReq) != nil
}

var _ actions.Context = (*pass)(nil)

// Conversation returns a copy of a conversation's record.
func (e *Engine) Conversation(id string) (Conv, bool) {
	c := e.mem.convs[id]
	if c == nil {
		return Conv{}, false
	}
	return *c.Clone(), true
}

// Contact returns a copy of a contact's record.
func (e *Engine) Contact(id string) (schemas.Contact, bool) {
	c := e.mem.contacts[id]
	if c == nil {
		return schemas.Contact{}, false
	}
	return *c, true
}

// Agent returns an agent's run-time state; agents are online until an
// agent.status event says otherwise.
func (e *Engine) Agent(id string) AgentState { return *e.mem.shared.agent(id) }

// Seed puts a conversation (and its contact) into the state as if earlier
// events had led there, for explain and rule tests. Its assignee counts
// against the agent's capacity like any assignment.
func (e *Engine) Seed(set *rules.Set, conv schemas.Conversation, contact *schemas.Contact) {
	c := NewConv(conv.ID, conv.OpenedAt)
	assignee := conv.Assignee
	conv.Assignee = ""
	if conv.Tags == nil {
		conv.Tags = []string{}
	}
	if conv.Status == "" {
		conv.Status = schemas.StatusOpen
	}
	if conv.Handler == "" {
		conv.Handler = schemas.HandlerBot
	}
	if conv.Priority == "" {
		conv.Priority = schemas.PriorityNormal
	}
	c.Conversation = conv
	if contact != nil {
		cc := *contact
		if cc.ID == "" {
			cc.ID = conv.ID
		}
		e.mem.contacts[cc.ID] = &cc
		c.Contact = cc.ID
	}
	e.mem.convs[conv.ID] = c
	// The clocks are not in a state, but what they follow is: an agent who
	// replied met first response, and a reply after the customer's last
	// message means the next message starts next response.
	c.sla.frDone = !conv.FirstResponseAt.IsZero()
	c.sla.nrArmed = !conv.LastAgentMessageAt.IsZero() && !conv.LastAgentMessageAt.Before(conv.LastCustomerMessageAt)
	p := &pass{e: e, st: e.mem, set: set, conv: c, ev: &schemas.Event{At: conv.OpenedAt}}
	p.setAssignee(assignee)
}

// CloseWindow closes a conversation's window in the engine's own state
// (see Conv.CloseWindow).
func (e *Engine) CloseWindow(conversation string) {
	if c := e.mem.convs[conversation]; c != nil {
		c.CloseWindow()
	}
}

// SetAgentStatus sets an agent's status outside any event, for seeding.
func (e *Engine) SetAgentStatus(id, status string) { e.mem.shared.agent(id).Status = status }

// Drain assigns conversations waiting in team queues to the agents
// eligible for them now, oldest first, and returns the assignments. The
// daemon calls it after a reload, which may have added agents or raised
// capacities; events drain the queues themselves whenever they free
// capacity or change an agent's status.
func (e *Engine) Drain(st State, set *rules.Set, at time.Time) ([]schemas.Assignment, error) {
	d := &schemas.Decision{}
	p := &pass{e: e, st: st, set: set, ev: &schemas.Event{At: at}, d: d}
	p.shared().drainedWith = nil // whatever was drained before, this set has not
	p.drain()
	if p.err != nil {
		return nil, p.err
	}
	return d.Assignments, nil
}
