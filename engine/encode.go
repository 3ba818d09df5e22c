package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/triage-dev/triage/actions"
	"github.com/triage-dev/triage/schemas"
)

// convRecord is a conversation as a store keeps it: what rules see, plus
// what only the engine needs to go on where it left off (the SLA clocks,
// the queue flag, the closed window). The engine owns this format, so a
// store never needs to know what is inside.
type convRecord struct {
	Conversation      schemas.Conversation `json:"conversation"`
	Notes             []Note               `json:"notes,omitempty"`
	Queued            bool                 `json:"queued,omitempty"`
	WaitTeam          string               `json:"wait_team,omitempty"`
	WaitRequest       *waitRequest         `json:"wait_request,omitempty"`
	WindowClosedAfter time.Time            `json:"window_closed_after,omitzero"`
	SLA               slaRecord            `json:"sla_clocks,omitzero"`
}

type waitRequest struct {
	Agent    string   `json:"agent,omitempty"`
	Strategy string   `json:"strategy,omitempty"`
	Skills   []string `json:"skills,omitempty"`
	Language string   `json:"language,omitempty"`
	Team     string   `json:"team,omitempty"`
}

type slaRecord struct {
	Clocks  [3]clockRecord `json:"clocks"`
	FRDone  bool           `json:"fr_done,omitempty"`
	NRArmed bool           `json:"nr_armed,omitempty"`
	Policy  string         `json:"policy,omitempty"`
}

type clockRecord struct {
	Started  bool           `json:"started,omitempty"`
	Running  bool           `json:"running,omitempty"`
	Stopped  bool           `json:"stopped,omitempty"`
	Since    time.Time      `json:"since,omitzero"`
	Spans    [][2]time.Time `json:"spans,omitempty"`
	Gen      int            `json:"gen,omitempty"`
	Policy   string         `json:"policy,omitempty"`
	Due      time.Time      `json:"due,omitzero"`
	WarnAt   time.Time      `json:"warn_at,omitzero"`
	Warned   bool           `json:"warned,omitempty"`
	Breached bool           `json:"breached,omitempty"`
}

// MarshalConv encodes everything the engine keeps of a conversation, for
// a store to save; UnmarshalConv reads it back.
func MarshalConv(c *Conv) ([]byte, error) {
	r := convRecord{Conversation: c.Conversation, Notes: c.Notes, Queued: c.queued, WindowClosedAfter: c.windowClosedAfter}
	if c.queued {
		q := c.waitReq
		r.WaitTeam = c.waitTeam
		r.WaitRequest = &waitRequest{Team: q.Team, Agent: q.Agent, Strategy: q.Strategy, Skills: q.Skills, Language: q.Language}
	}
	r.SLA = slaRecord{FRDone: c.sla.frDone, NRArmed: c.sla.nrArmed, Policy: c.sla.policy}
	for i, k := range c.sla.clocks {
		cr := clockRecord{Started: k.started, Running: k.running, Stopped: k.stopped, Since: k.since, Gen: k.gen,
			Policy: k.policy, Due: k.due, WarnAt: k.warnAt, Warned: k.warned, Breached: k.breached}
		for _, s := range k.spans {
			cr.Spans = append(cr.Spans, [2]time.Time{s.from, s.to})
		}
		r.SLA.Clocks[i] = cr
	}
	return json.Marshal(r)
}

// UnmarshalConv decodes what MarshalConv encoded.
func UnmarshalConv(data []byte) (*Conv, error) {
	var r convRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode conversation: %w", err)
	}
	c := &Conv{Conversation: r.Conversation, Notes: r.Notes, queued: r.Queued, windowClosedAfter: r.WindowClosedAfter, waitTeam: r.WaitTeam}
	if q := r.WaitRequest; q != nil {
		c.waitReq = actions.AssignRequest{Team: q.Team, Agent: q.Agent, Strategy: q.Strategy, Skills: q.Skills, Language: q.Language}
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	c.sla.frDone, c.sla.nrArmed, c.sla.policy = r.SLA.FRDone, r.SLA.NRArmed, r.SLA.Policy
	for i, cr := range r.SLA.Clocks {
		k := metricClock{started: cr.Started, running: cr.Running, stopped: cr.Stopped, since: cr.Since, gen: cr.Gen,
			policy: cr.Policy, due: cr.Due, warnAt: cr.WarnAt, warned: cr.Warned, breached: cr.Breached}
		for _, s := range cr.Spans {
			k.spans = append(k.spans, span{s[0], s[1]})
		}
		c.sla.clocks[i] = k
	}
	return c, nil
}
