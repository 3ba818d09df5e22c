package engine

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/triage-dev/triage/calendar"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// calendarOrWall counts business time by a policy's calendar; a nil
// calendar counts wall-clock time (24x7).
type calendarOrWall struct{ c *calendar.Calendar }

func (w *calendarOrWall) Between(a, b time.Time) time.Duration { return w.c.Between(a, b) }

// addFrom is the instant d of business time after t; t itself when d is
// not positive (the deadline has passed), zero when the calendar never
// opens again.
func (w *calendarOrWall) addFrom(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	at, ok := w.c.Add(t, d)
	if !ok {
		return time.Time{}
	}
	return at
}

// newStretch starts the clocks afresh at a reopening. Generations carry
// on, so deadlines planned in the old stretch can never match a new clock.
func (st *slaState) newStretch() {
	var fresh slaState
	for i := range st.clocks {
		fresh.clocks[i].gen = st.clocks[i].gen + 1
	}
	*st = fresh
}

// The SLA clocks of one stretch of a conversation (from opening, or
// reopening, to resolution), one per metric, in rules.Metrics order.
const (
	mFirst = iota
	mNext
	mResolution
)

// metricClock measures one metric. Business time is counted by the
// calendar of the policy applying when the deadline is computed, so a
// policy re-chosen mid-way recomputes the deadline from the same start.
type metricClock struct {
	started  bool
	running  bool // false while paused or once stopped
	stopped  bool
	since    time.Time // start of the current running segment
	spans    []span    // earlier running segments, closed by pauses
	gen      int       // a new run gets a new generation
	policy   string    // the policy the current deadlines were planned under
	due      time.Time // planned breach; zero when none
	warnAt   time.Time // planned warning; zero when none
	warned   bool
	breached bool
}

type slaState struct {
	clocks  [3]metricClock
	frDone  bool // an agent replied in this stretch: first response is met
	nrArmed bool // an agent replied; the next customer message starts next_response
	policy  string
}

// span is a stretch of wall-clock time a clock ran. Spans are kept, not
// summed, because how much of them counts depends on the calendar of the
// policy applying when the deadline is planned: a policy re-chosen after a
// pause re-counts them in its own calendar, from the same start.
type span struct{ from, to time.Time }

// reach returns the instant the clock's business time in cal reaches d:
// inside an earlier span when it got there before a pause (a policy
// re-chosen later can make a deadline already past), else counted on from
// the current segment. Zero when the calendar never opens again.
func (c *metricClock) reach(cal *calendarOrWall, d time.Duration) time.Time {
	var sum time.Duration
	for _, s := range c.spans {
		b := cal.Between(s.from, s.to)
		if sum+b >= d {
			return cal.addFrom(s.from, d-sum)
		}
		sum += b
	}
	return cal.addFrom(c.since, d-sum)
}

// deadline is a planned sla.warning or sla.breached.
type deadline struct {
	at      time.Time
	conv    string
	metric  int
	warning bool
	gen     int
	policy  string
	due     time.Time
	seq     int
}

// deadlineLess orders planned deadlines by time, then by planning order.
func deadlineLess(a, b deadline) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

func (c *metricClock) start(at time.Time) {
	*c = metricClock{started: true, running: true, since: at, gen: c.gen + 1}
}

func (c *metricClock) pause(at time.Time) {
	if c.running {
		c.spans = append(c.spans, span{c.since, at})
		c.running = false
		c.gen++ // planned deadlines of the running segment are void
		c.due, c.warnAt = time.Time{}, time.Time{}
	}
}

func (c *metricClock) resume(at time.Time) {
	if c.started && !c.running && !c.stopped {
		c.running, c.since = true, at
	}
}

func (c *metricClock) stop() {
	if c.started && !c.stopped {
		c.running, c.stopped = false, true
		c.gen++
		c.warnAt = time.Time{}
	}
}

// slaUpdate moves the clocks to the conversation's state at this moment,
// re-chooses the policy and plans deadlines. It runs after the event's own
// effects and after every action, so a handoff message rendered right
// after an escalation already sees the first-response deadline.
func (p *pass) slaUpdate() {
	policies := p.set.SLAPolicies()
	c := p.conv
	if len(policies) == 0 || c == nil {
		return
	}
	st := &c.sla
	now := p.ev.At
	open := c.Status != schemas.StatusResolved
	human := c.Handler == schemas.HandlerHuman
	waiting := c.Messages > 0 && !c.LastCustomerMessageAt.Before(c.OpenedAt) &&
		(c.LastAgentMessageAt.IsZero() || c.LastCustomerMessageAt.After(c.LastAgentMessageAt))

	pol := p.choosePolicy()

	fr, nr, res := &st.clocks[mFirst], &st.clocks[mNext], &st.clocks[mResolution]
	if !open {
		for i := range st.clocks {
			if st.clocks[i].running {
				st.clocks[i].spans = append(st.clocks[i].spans, span{st.clocks[i].since, now})
			}
			st.clocks[i].stop()
		}
	} else {
		if !res.started {
			res.start(c.OpenedAt)
		}
		if p.ev.Type == schemas.AgentReplied && p.phase == phaseBefore {
			if fr.started {
				fr.stop()
			}
			st.frDone = true
			if nr.running || (nr.started && !nr.stopped) {
				nr.stop()
			}
			st.nrArmed = true
		}
		switch {
		case !st.frDone && !fr.started && human && waiting:
			fr.start(now)
		case st.frDone && st.nrArmed && human && waiting && p.ev.Type == schemas.MessageReceived:
			nr.start(now)
			st.nrArmed = false
		}
		if nr.started && !nr.stopped {
			if c.Status == schemas.StatusPending {
				nr.pause(now)
			} else {
				nr.resume(now)
			}
		}
	}
	p.plan(pol)
	p.slaView(pol)
}

// policyRef is the applying policy, or none.
type policyRef struct{ *rules.SLAPolicy }

func (r policyRef) name() string {
	if r.SLAPolicy == nil {
		return ""
	}
	return r.Name
}

// calOrNil returns the calendar arithmetic; nil counts 24x7.
func (r policyRef) calOrNil() *calendarOrWall {
	if r.SLAPolicy == nil {
		return &calendarOrWall{}
	}
	return &calendarOrWall{r.Cal()}
}

func (p *pass) choosePolicy() policyRef {
	for _, pol := range p.set.SLAPolicies() {
		ok, err := pol.Applies(p.e.env)
		if err != nil {
			// Chosen after every action too: record the error once.
			if p.d != nil && !p.policyErr[pol.Name] {
				if p.policyErr == nil {
					p.policyErr = map[string]bool{}
				}
				p.policyErr[pol.Name] = true
				p.d.Errors = append(p.d.Errors, schemas.RuleError{Rule: "sla:" + pol.Name, Error: err.Error()})
			}
			continue
		}
		if ok {
			return policyRef{pol}
		}
	}
	return policyRef{}
}

// plan computes each running clock's deadlines under the policy and
// queues those that changed. A breach or warning already fired in a run is
// not planned again: each deadline fires at most once.
func (p *pass) plan(pol policyRef) {
	c := p.conv
	st := &c.sla
	changed := st.policy != pol.name()
	st.policy = pol.name()
	for i := range st.clocks {
		k := &st.clocks[i]
		if k.stopped {
			continue // it keeps the deadline it was held to, for the record
		}
		var due, warnAt time.Time
		if k.running && pol.SLAPolicy != nil {
			if target := pol.Targets[rules.Metrics[i]]; target > 0 {
				cal := pol.calOrNil()
				due = k.reach(cal, target)
				if w := pol.WarnBefore; w > 0 && target > w {
					warnAt = k.reach(cal, target-w)
				}
			}
		}
		if !changed && due.Equal(k.due) && warnAt.Equal(k.warnAt) && k.policy == pol.name() {
			continue
		}
		// Deadlines print in UTC whatever zone the calendar computed in.
		if !due.IsZero() {
			due = due.UTC()
		}
		if !warnAt.IsZero() {
			warnAt = warnAt.UTC()
		}
		if !changed && due.Equal(k.due) && warnAt.Equal(k.warnAt) && k.policy == pol.name() {
			continue
		}
		k.gen++
		k.policy, k.due, k.warnAt = pol.name(), due, warnAt
		pl, ok := p.st.(planner)
		if !ok {
			continue
		}
		if !due.IsZero() && !k.breached {
			pl.plan(deadline{at: due, conv: c.ID, metric: i, gen: k.gen, policy: k.policy, due: due})
		}
		if !warnAt.IsZero() && !k.warned && !k.breached {
			pl.plan(deadline{at: warnAt, conv: c.ID, metric: i, warning: true, gen: k.gen, policy: k.policy, due: due})
		}
	}
}

// pending lists the deadlines the conversation's clocks are held to and
// that have not fired, earliest first: exactly the entries of Memory's
// heap that FireDue would not drop as stale.
func (c *Conv) pending() []deadline {
	var out []deadline
	for i := range c.sla.clocks {
		k := &c.sla.clocks[i]
		if !k.running || k.breached {
			continue
		}
		if !k.warnAt.IsZero() && !k.warned {
			out = append(out, deadline{at: k.warnAt, conv: c.ID, metric: i, warning: true, gen: k.gen, policy: k.policy, due: k.due})
		}
		if !k.due.IsZero() {
			out = append(out, deadline{at: k.due, conv: c.ID, metric: i, gen: k.gen, policy: k.policy, due: k.due})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// NextDeadline returns when the conversation's earliest SLA deadline that
// has not fired falls. A store keeps it with the conversation, so that
// its timer finds the conversations due without asking every one.
func (c *Conv) NextDeadline() (time.Time, bool) {
	// pending's rules, without its slice: a store asks at every commit.
	var next time.Time
	consider := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for i := range c.sla.clocks {
		k := &c.sla.clocks[i]
		if !k.running || k.breached {
			continue
		}
		if !k.warned {
			consider(k.warnAt)
		}
		consider(k.due)
	}
	return next, !next.IsZero()
}

// event is the sla.warning or sla.breached event a deadline fires as. Its
// id is made of the deadline, so firing it twice is a duplicate.
func (dl deadline) event() schemas.Event {
	typ, kind := schemas.SLABreached, "breached"
	if dl.warning {
		typ, kind = schemas.SLAWarning, "warning"
	}
	metric := rules.Metrics[dl.metric]
	return schemas.Event{
		ID:           fmt.Sprintf("sla:%s:%s:%s:%s", dl.conv, metric, kind, dl.at.UTC().Format(time.RFC3339Nano)),
		Type:         typ,
		At:           dl.at,
		Conversation: dl.conv,
		SLA:          &schemas.SLAInfo{Policy: dl.policy, Metric: metric, DueAt: dl.due},
	}
}

// FireDueIn evaluates against st, in deadline order, the SLA deadlines of
// one conversation due at or before until, and returns their decisions.
// It is the daemon's FireDue: st holds the conversation, and deadlines of
// other conversations are theirs to fire.
func (e *Engine) FireDueIn(st State, set *rules.Set, conv string, until time.Time) ([]schemas.Decision, error) {
	var out []schemas.Decision
	for {
		c, err := st.Conversation(conv)
		if err != nil {
			return out, fmt.Errorf("%w: %w", ErrState, err)
		}
		if c == nil {
			return out, nil
		}
		if next, ok := c.NextDeadline(); !ok || next.After(until) {
			return out, nil // the common case, without pending's slice
		}
		due := c.pending()
		ev := due[0].event()
		d, err := e.Eval(st, set, &ev)
		if err != nil {
			return out, err
		}
		if d.Duplicate {
			// Recorded as fired, yet the clock says it has not: mark it, or
			// the loop would offer it forever.
			c.sla.clocks[due[0].metric].fired(due[0].warning)
			continue
		}
		out = append(out, d)
	}
}

// fired marks a warning or breach of the clock as fired.
func (k *metricClock) fired(warning bool) {
	if warning {
		k.warned = true
	} else {
		k.breached = true
	}
}

func (p *pass) slaView(pol policyRef) {
	c := p.conv
	view := schemas.SLAStatus{Policy: pol.name()}
	for i, k := range c.sla.clocks {
		if !k.started {
			continue
		}
		m := schemas.SLAMetric{DueAt: k.due, Breached: k.breached}
		switch {
		case k.stopped:
			m.State = schemas.SLAStopped
		case k.running:
			m.State = schemas.SLARunning
		default:
			m.State = schemas.SLAPaused
		}
		switch i {
		case mFirst:
			view.FirstResponse = m
		case mNext:
			view.NextResponse = m
		default:
			view.Resolution = m
		}
	}
	c.SLA = view
}

// slaEvent applies an sla.warning or sla.breached to the clock it is about.
func (p *pass) slaEvent() {
	info := p.ev.SLA
	if info == nil || p.conv == nil {
		return
	}
	for i, name := range rules.Metrics {
		if name != info.Metric {
			continue
		}
		p.conv.sla.clocks[i].fired(p.ev.Type == schemas.SLAWarning)
	}
}

// slaETA is minutes left to the running first- or next-response deadline,
// rounded up, at least 1; ok is false when neither runs under a policy.
func (p *pass) slaETA() (int, bool) {
	c := p.conv
	if c == nil {
		return 0, false
	}
	for _, i := range []int{mFirst, mNext} {
		k := c.sla.clocks[i]
		if k.running && !k.due.IsZero() {
			return max(1, int(math.Ceil(k.due.Sub(p.ev.At).Minutes()))), true
		}
	}
	return 0, false
}

// NextDeadline returns when the earliest planned SLA deadline falls.
func (e *Engine) NextDeadline() (time.Time, bool) {
	dl, ok := e.mem.deadlines.peek()
	return dl.at, ok
}

// FireDue evaluates, in deadline order, every SLA deadline due at or
// before until, as sla.warning and sla.breached events whose time is the
// deadline, and returns their decisions. A deadline whose clock stopped,
// paused or was re-planned since is dropped: it never fires.
func (e *Engine) FireDue(set *rules.Set, until time.Time) []schemas.Decision {
	var out []schemas.Decision
	m := e.mem
	for next, ok := m.deadlines.peek(); ok && !next.at.After(until); next, ok = m.deadlines.peek() {
		dl := m.deadlines.pop()
		c := m.convs[dl.conv]
		if c == nil {
			continue
		}
		k := c.sla.clocks[dl.metric]
		if k.gen != dl.gen || !k.running || k.policy != dl.policy || (dl.warning && k.warned) || k.breached {
			continue
		}
		ev := dl.event()
		d, err := e.Process(set, &ev)
		if err != nil {
			continue // cannot happen: the event is well-formed and memory does not fail
		}
		out = append(out, d)
	}
	return out
}

// PolicyCheck is one SLA policy's when, evaluated for explain.
type PolicyCheck struct {
	Policy  *rules.SLAPolicy
	Applies bool
	Err     error
}

// CheckPolicies evaluates every SLA policy's when against a conversation's
// current state, with ev as the event, in the order the engine chooses:
// the first that applies is the conversation's policy.
func (e *Engine) CheckPolicies(set *rules.Set, ev *schemas.Event) []PolicyCheck {
	c := e.mem.convs[ev.Conversation]
	if c == nil || len(set.SLAPolicies()) == 0 {
		return nil
	}
	env := set.NewEnv()
	contact := e.mem.contact(c.Contact)
	p := &pass{e: e, st: e.mem, set: set, ev: ev, conv: c}
	env.Bind(ev, &c.Conversation, contact, &c.assigneeView, p.eta())
	var out []PolicyCheck
	for _, pol := range set.SLAPolicies() {
		ok, err := pol.Applies(env)
		out = append(out, PolicyCheck{Policy: pol, Applies: ok, Err: err})
	}
	return out
}
