package engine_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/internal/benchgen"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// codecState keeps everything encoded between units of work, the way a
// database does: every unit decodes what it touches and encodes it back
// when it ends. Evaluating through it must decide exactly what evaluating
// against live memory decides, or some part of the engine's state is not
// in MarshalConv or Shared's accessors.
type codecState struct {
	convs    map[string][]byte
	contacts map[string]schemas.Contact
	seen     map[string]bool
	agents   []engine.AgentState
	teams    []engine.TeamState

	// the unit of work in progress
	open   map[string]*engine.Conv
	people map[string]*schemas.Contact
	shared *engine.Shared
}

func newCodecState() *codecState {
	return &codecState{convs: map[string][]byte{}, contacts: map[string]schemas.Contact{}, seen: map[string]bool{}}
}

func (s *codecState) begin() {
	s.open, s.people, s.shared = map[string]*engine.Conv{}, map[string]*schemas.Contact{}, nil
}

func (s *codecState) commit(t *testing.T) {
	t.Helper()
	for id, c := range s.open {
		b, err := engine.MarshalConv(c)
		if err != nil {
			t.Fatal(err)
		}
		s.convs[id] = b
	}
	for id, c := range s.people {
		s.contacts[id] = *c
	}
	if s.shared != nil {
		s.agents, s.teams = s.shared.Agents(), s.shared.Teams()
	}
}

func (s *codecState) Seen(id string) (bool, error) {
	dup := s.seen[id]
	s.seen[id] = true
	return dup, nil
}

func (s *codecState) Conversation(id string) (*engine.Conv, error) {
	if c := s.open[id]; c != nil {
		return c, nil
	}
	b, ok := s.convs[id]
	if !ok {
		return nil, nil
	}
	c, err := engine.UnmarshalConv(b)
	if err != nil {
		return nil, err
	}
	s.open[id] = c
	return c, nil
}

func (s *codecState) AddConversation(c *engine.Conv) error {
	s.open[c.ID] = c
	return nil
}

func (s *codecState) Contact(id string) (*schemas.Contact, error) {
	if c := s.people[id]; c != nil {
		return c, nil
	}
	c, ok := s.contacts[id]
	if !ok {
		c = schemas.Contact{ID: id}
	}
	s.people[id] = &c
	return &c, nil
}

func (s *codecState) Shared() (*engine.Shared, error) {
	if s.shared == nil {
		s.shared = engine.NewShared()
		for _, a := range s.agents {
			s.shared.PutAgent(a)
		}
		for _, t := range s.teams {
			s.shared.PutTeam(t)
		}
	}
	return s.shared, nil
}

func (s *codecState) Queued(id string) (*engine.Conv, error) { return s.Conversation(id) }

func (s *codecState) Peek() (*engine.Shared, error) {
	if s.shared != nil {
		return s.shared, nil
	}
	peek := engine.NewShared()
	for _, a := range s.agents {
		peek.PutAgent(a)
	}
	return peek, nil
}

// TestStateSurvivesEncoding runs a week of support traffic on the example
// rules (SLA policies, teams, queues, agents going away) twice: against
// live memory, and through codecState. Both fire each conversation's due
// deadlines before its events, as the daemon does.
func TestStateSurvivesEncoding(t *testing.T) {
	set, err := rules.Load("../examples/rules", rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	agents := benchgen.Agents(set)
	events := benchgen.Stream(benchgen.StreamConfig{
		Events: 4000, Conversations: 150, Active: 30, Seed: benchgen.Seed,
		Keywords: []string{"human", "refund", "now", "complaint"}, KeywordRate: 0.2,
		Agents: agents, LowConfidence: 0.3, AgentEpisodes: 0.6, Abandoned: 0.2,
		MeanGap: 3 * time.Minute,
	})

	run := func(st engine.State, begin func(), commit func()) []string {
		eng := engine.NewStateless()
		var out []string
		record := func(d schemas.Decision) {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		for _, ev := range events {
			begin()
			if ev.Conversation != "" {
				fired, err := eng.FireDueIn(st, set, ev.Conversation, ev.At)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range fired {
					record(d)
				}
			}
			d, err := eng.Eval(st, set, &ev)
			if err != nil {
				t.Fatal(err)
			}
			record(d)
			commit()
		}
		return out
	}
	live := run(engine.NewMemory(), func() {}, func() {})
	cs := newCodecState()
	coded := run(cs, cs.begin, func() { cs.commit(t) })

	if len(live) != len(coded) {
		t.Fatalf("%d decisions live, %d through encoding", len(live), len(coded))
	}
	sla, queued := 0, 0
	for i := range live {
		if live[i] != coded[i] {
			t.Fatalf("decision %d differs\nlive:    %s\nencoded: %s", i, live[i], coded[i])
		}
		var d schemas.Decision
		_ = json.Unmarshal([]byte(live[i]), &d)
		if d.Event.SLA != nil {
			sla++
		}
		queued += len(d.Assignments)
	}
	// The comparison means something only if the stream reached the parts
	// of the state that are hard to encode.
	if sla == 0 || queued == 0 {
		t.Fatalf("the stream fired %d SLA events and drained %d queued conversations; it should do both", sla, queued)
	}
	t.Logf("%d decisions, %d SLA events, %d assignments from queues", len(live), sla, queued)
}
