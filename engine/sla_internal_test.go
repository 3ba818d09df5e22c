package engine

import (
	"testing"
	"time"

	"github.com/triage-dev/triage/internal/benchgen"
	"github.com/triage-dev/triage/rules"
)

// TestNextDeadlineIsFirstPending: NextDeadline, which stores ask at every
// commit and which does not allocate, agrees with pending, which fires,
// for every conversation after every event of a week of example traffic.
func TestNextDeadlineIsFirstPending(t *testing.T) {
	set, err := rules.Load("../examples/rules", rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	agents := benchgen.Agents(set)
	events := benchgen.Stream(benchgen.StreamConfig{
		Events: 3000, Conversations: 100, Active: 25, Seed: benchgen.Seed,
		Keywords: []string{"human", "refund", "now"}, KeywordRate: 0.2,
		Agents: agents, LowConfidence: 0.3, AgentEpisodes: 0.6, MeanGap: 2 * time.Minute,
	})
	e := New()
	checked := 0
	for _, ev := range events {
		e.FireDue(set, ev.At)
		if _, err := e.Process(set, &ev); err != nil {
			t.Fatal(err)
		}
		for id, c := range e.mem.convs {
			next, ok := c.NextDeadline()
			p := c.pending()
			if ok != (len(p) > 0) || (ok && !next.Equal(p[0].at)) {
				t.Fatalf("after %s, %s: NextDeadline = %v, %v; pending = %v", ev.ID, id, next, ok, p)
			}
			if ok {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no conversation ever had a deadline")
	}
}
