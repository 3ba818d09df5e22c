package engine_test

// Per-event decision time of a synthetic 1,000-rule set against the naive
// baseline: one expr.Run per rule, per event. docs/benchmarks.md has the
// commands, the figures and where the time goes.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/internal/benchgen"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

const (
	benchKeywordRules   = 500
	benchThresholdRules = 500
	benchListWords      = 5
	benchEvents         = 20000
	benchConversations  = 2000
	benchActive         = 200
	benchKeywordRate    = 0.4
)

type decisionFixture struct {
	syn    benchgen.Synthetic
	set    *rules.Set
	events []schemas.Event
}

func newDecisionFixture(tb testing.TB) *decisionFixture {
	tb.Helper()
	syn := benchgen.SyntheticSet(benchKeywordRules, benchThresholdRules, benchListWords, benchgen.Seed)
	set, err := rules.Compile(syn.Files, rules.Options{})
	if err != nil {
		tb.Fatalf("synthetic rule set does not compile: %v", err)
	}
	events := benchgen.Stream(benchgen.StreamConfig{
		Events: benchEvents, Conversations: benchConversations, Active: benchActive,
		Seed: benchgen.Seed, Keywords: syn.Vocabulary, KeywordRate: benchKeywordRate,
	})
	return &decisionFixture{syn: syn, set: set, events: events}
}

// runTriage processes b.N events with engine.Process, cycling through
// events. Each event gets a unique id (made before the timer starts) and,
// on every new cycle, a clock moved past the previous cycle's, so the
// engine sees one long, ever-later stream and no duplicates.
func runTriage(b *testing.B, set *rules.Set, events []schemas.Event) {
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "e" + strconv.Itoa(i)
	}
	span := events[len(events)-1].At.Sub(events[0].At) + time.Minute
	eng := engine.New()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cycle, k := i/len(events), i%len(events)
		ev := events[k]
		ev.ID = ids[i]
		ev.At = ev.At.Add(time.Duration(cycle) * span)
		if _, err := eng.Process(set, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// naiveRule is one rule of the baseline: a program compiled once and run
// with expr.Run (a new VM every call) against a map made for the event.
type naiveRule struct {
	prog *vm.Program
}

// naiveRules compiles the baseline the issue defines: every keyword rule as
// any(list, {lower(event.text) contains #}) with its list inlined, every
// threshold rule as event.confidence < tN with tN inlined as a number.
// Inlining both keeps the per-event map small, which makes the baseline
// cheaper, not dearer.
func naiveRules(tb testing.TB, syn benchgen.Synthetic) []naiveRule {
	tb.Helper()
	env := map[string]any{"event": naiveEvent(&schemas.Event{})}
	var out []naiveRule
	add := func(src string) {
		p, err := expr.Compile(src, expr.Env(env), expr.AsBool())
		if err != nil {
			tb.Fatalf("naive rule %q: %v", src, err)
		}
		out = append(out, naiveRule{prog: p})
	}
	for _, list := range syn.Lists {
		quoted := make([]string, len(list))
		for i, w := range list {
			quoted[i] = strconv.Quote(w)
		}
		add("any([" + strings.Join(quoted, ", ") + "], {lower(event.text) contains #})")
	}
	for _, t := range syn.Thresholds {
		add("event.confidence < " + strconv.FormatFloat(t, 'g', -1, 64))
	}
	return out
}

func naiveEvent(ev *schemas.Event) map[string]any {
	return map[string]any{
		"id": ev.ID, "type": ev.Type, "at": ev.At, "conversation": ev.Conversation,
		"text": ev.Text, "kind": ev.Kind, "payload": ev.Payload, "confidence": ev.Confidence,
		"topic": ev.Topic, "resolved": ev.Resolved, "agent": ev.Agent, "status": ev.Status,
	}
}

// runNaive evaluates every rule for every event: no index by event type,
// no keyword matcher, no reuse of VM or environment. The baseline keeps no
// state, so the order of events does not matter to it: it walks the
// stream with a stride coprime to its length, so that even a short run
// (b.N is about 1,000 here) samples the whole stream and not its start.
func runNaive(b *testing.B, prog []naiveRule, events []schemas.Event) {
	stride := coprimeStride(len(events))
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := &events[(i*stride)%len(events)]
		env := map[string]any{"event": naiveEvent(ev)}
		for _, r := range prog {
			v, err := expr.Run(r.prog, env)
			if err != nil {
				b.Fatal(err)
			}
			if v.(bool) {
				matched++
			}
		}
	}
	naiveSink = matched
}

var naiveSink int

// coprimeStride returns a stride near n/φ that is coprime to n, so that
// k*stride mod n visits every index once per n steps, spread out.
func coprimeStride(n int) int {
	gcd := func(a, b int) int {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	s := int(float64(n)*0.618) | 1
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

// BenchmarkDecision measures the time to decide one event with a
// 1,000-rule set (500 keyword rules on message.received, 500 confidence
// thresholds on bot.answered), against the naive baseline on the same
// events. The ratio triage/naive is the figure the issue asks for.
func BenchmarkDecision(b *testing.B) {
	f := newDecisionFixture(b)
	naive := naiveRules(b, f.syn)
	messages := benchgen.Filter(f.events, schemas.MessageReceived)
	answers := benchgen.Filter(f.events, schemas.BotAnswered)

	b.Run("triage", func(b *testing.B) { runTriage(b, f.set, f.events) })
	b.Run("naive", func(b *testing.B) { runNaive(b, naive, f.events) })
	b.Run("triage-keyword-only", func(b *testing.B) { runTriage(b, f.set, messages) })
	b.Run("naive-keyword-only", func(b *testing.B) { runNaive(b, naive, messages) })
	b.Run("triage-threshold-only", func(b *testing.B) { runTriage(b, f.set, answers) })
	b.Run("naive-threshold-only", func(b *testing.B) { runNaive(b, naive, answers) })
}

// TestDecisionBenchmarkInput checks, untimed, that the benchmark measures
// what it says: the set compiles with 1,000 rules, the stream mixes both
// event types, a fair share of messages hit a list, and triage and the
// baseline agree on which threshold rules match.
func TestDecisionBenchmarkInput(t *testing.T) {
	f := newDecisionFixture(t)
	if n := len(f.set.Rules()); n != benchKeywordRules+benchThresholdRules {
		t.Fatalf("rules: %d", n)
	}
	if w := f.set.Warnings(); len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}
	messages := benchgen.Filter(f.events, schemas.MessageReceived)
	answers := benchgen.Filter(f.events, schemas.BotAnswered)
	t.Logf("stream: %d events, %.1f%% bot.answered (%.1f%% of the first 10,000)", len(f.events),
		100*float64(len(answers))/float64(len(f.events)),
		100*float64(len(benchgen.Filter(f.events[:10000], schemas.BotAnswered)))/10000)
	if len(messages) == 0 || len(answers) == 0 || len(messages)+len(answers) != len(f.events) {
		t.Fatalf("mix: %d messages, %d answers of %d", len(messages), len(answers), len(f.events))
	}
	eng := engine.New()
	naive := naiveRules(t, f.syn)
	hit, kwMatches, thrMatches, naiveThr := 0, 0, 0, 0
	// A prefix is enough to check the mix and keeps the test quick: a
	// bot.answered event fires about 250 rules.
	sample := f.events[:4000]
	messages, answers = benchgen.Filter(sample, schemas.MessageReceived), benchgen.Filter(sample, schemas.BotAnswered)
	for i := range sample {
		ev := sample[i]
		d, err := eng.Process(f.set, &ev)
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case schemas.MessageReceived:
			if n := len(strings.Fields(ev.Text)); n < 10 || n > 25 {
				t.Errorf("%s: %d words", ev.ID, n)
			}
			if len(d.Matched) > 0 {
				hit++
			}
			kwMatches += len(d.Matched)
		case schemas.BotAnswered:
			thrMatches += len(d.Matched)
			env := map[string]any{"event": naiveEvent(&ev)}
			for _, r := range naive[benchKeywordRules:] {
				if v, _ := expr.Run(r.prog, env); v == true {
					naiveThr++
				}
			}
		}
	}
	if thrMatches != naiveThr {
		t.Errorf("threshold matches: triage %d, naive %d", thrMatches, naiveThr)
	}
	share := float64(hit) / float64(len(messages))
	if share < 0.2 || share > 0.6 {
		t.Errorf("%.0f%% of messages hit a list; the benchmark wants a realistic share", 100*share)
	}
	t.Logf("first %d events: %d message.received (%.1f%% hit a list, %.2f keyword rules matched per message), %d bot.answered (%.1f threshold rules matched per answer)",
		len(sample), len(messages), 100*share, float64(kwMatches)/float64(len(messages)), len(answers), float64(thrMatches)/float64(len(answers)))
}
