package main

// Replay throughput on a generated 100,000-event stream with the examples'
// rule set, against bare JSON decoding and encoding of the same bytes.
// docs/benchmarks.md has the commands, the figures and where the time goes.

import (
	"bufio"
	"bytes"
	"encoding/json"
	jsonv2 "github.com/go-json-experiment/json"
	"io"
	"os"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/internal/benchgen"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

const (
	replayEvents        = 100000
	replayConversations = 2000
	replayActive        = 30
	// replayKeywordRate is the share of customer messages holding one of
	// the examples' keywords (asking for a human, a refund, a complaint,
	// urgency); the rest the bot handles.
	replayKeywordRate = 0.15
	// replayLowConfidence is the share of bot answers below 0.6, the
	// examples' confidence_threshold; replayAgentEpisodes the share of
	// episodes in which an agent replies.
	replayLowConfidence = 0.15
	replayAgentEpisodes = 0.3
	// replayBacklogAbandoned is, for the triage-backlog stream, the share of
	// episodes nobody resolves; their conversations keep their agents'
	// capacity, so escalations queue up behind them.
	replayBacklogAbandoned = 0.2
)

type replayFixture struct {
	set    *rules.Set
	data   []byte
	events int
}

func newReplayFixture(tb testing.TB, abandoned float64) *replayFixture {
	tb.Helper()
	const dir = "../../examples/rules"
	set, err := rules.Load(dir, rules.Options{})
	if err != nil {
		tb.Fatalf("examples do not load: %v", err)
	}
	// Customers use the words of the examples' own keyword lists.
	raw, err := os.ReadFile(dir + "/vocabulary.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var vocab struct {
		Lists map[string][]string `yaml:"lists"`
	}
	if err := yaml.Unmarshal(raw, &vocab); err != nil {
		tb.Fatal(err)
	}
	var keywords []string
	for _, name := range []string{"human_keywords", "refund_words", "complaint_words", "urgent_words"} {
		keywords = append(keywords, vocab.Lists[name]...)
	}
	if len(keywords) == 0 {
		tb.Fatal("no keyword lists in examples/rules/vocabulary.yaml")
	}
	agents := benchgen.Agents(set)
	events := benchgen.Stream(benchgen.StreamConfig{
		Events: replayEvents, Conversations: replayConversations, Active: replayActive,
		Seed: benchgen.Seed, Keywords: keywords, KeywordRate: replayKeywordRate, Agents: agents,
		Abandoned: abandoned, LowConfidence: replayLowConfidence, AgentEpisodes: replayAgentEpisodes,
	})
	return &replayFixture{set: set, data: benchgen.JSONLines(events), events: len(events)}
}

// decodeEncode is the baseline: the same line reading as replay, each line
// decoded into a schemas.Event and that event encoded again (not encoded
// when w is nil).
func decodeEncode(r io.Reader, w io.Writer) (int, error) {
	return decodeEncodeWith(r, w, json.Unmarshal)
}

// decodeEncodeJSONv2 is the same baseline decoding with the decoder replay
// itself uses, so the comparison can also be read without that advantage.
func decodeEncodeJSONv2(r io.Reader, w io.Writer) (int, error) {
	return decodeEncodeWith(r, w, func(b []byte, v any) error {
		return jsonv2.Unmarshal(b, v, jsonv2.MatchCaseInsensitiveNames(true))
	})
}

func decodeEncodeWith(r io.Reader, w io.Writer, unmarshal func([]byte, any) error) (int, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	bw := bufio.NewWriterSize(w, 1<<16)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	for {
		line, rerr := br.ReadBytes('\n')
		if len(trimSpace(line)) > 0 {
			var ev schemas.Event
			if err := unmarshal(line, &ev); err != nil {
				return n, err
			}
			if w != nil {
				if err := enc.Encode(&ev); err != nil {
					return n, err
				}
			}
			n++
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// BenchmarkReplay measures replay (decode, decide, encode the decision) of
// a 100,000-event stream; one op is the whole stream. decode-encode is the
// floor any replay pays: MB/s and events/s of both compare directly. The
// other sub-benchmarks split replay's time into its parts on the same
// events: decoding alone, the engine alone (events decoded beforehand),
// encoding the decisions alone, and encoding them without
// schemas.Decision's MarshalJSON. triage-backlog is replay of a stream in
// which a fifth of the conversations are never resolved, so the support
// team's queue grows through the stream.
func BenchmarkReplay(b *testing.B) {
	f := newReplayFixture(b, 0)
	perStream := func(b *testing.B) {
		b.ReportMetric(float64(f.events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("triage", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bad, err := replay(f.set, bytes.NewReader(f.data), "bench.jsonl", io.Discard, io.Discard, time.Time{})
			if err != nil || bad != 0 {
				b.Fatalf("replay: %d bad, %v", bad, err)
			}
		}
		perStream(b)
	})
	b.Run("triage-backlog", func(b *testing.B) {
		bf := newReplayFixture(b, replayBacklogAbandoned)
		b.SetBytes(int64(len(bf.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bad, err := replay(bf.set, bytes.NewReader(bf.data), "bench.jsonl", io.Discard, io.Discard, time.Time{})
			if err != nil || bad != 0 {
				b.Fatalf("replay: %d bad, %v", bad, err)
			}
		}
		perStream(b)
	})
	b.Run("decode-encode", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if n, err := decodeEncode(bytes.NewReader(f.data), io.Discard); err != nil || n != f.events {
				b.Fatalf("decode-encode: %d events, %v", n, err)
			}
		}
		perStream(b)
	})
	b.Run("decode-encode-jsonv2", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if n, err := decodeEncodeJSONv2(bytes.NewReader(f.data), io.Discard); err != nil || n != f.events {
				b.Fatalf("decode-encode-jsonv2: %d events, %v", n, err)
			}
		}
		perStream(b)
	})
	b.Run("part=decode", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if n, err := decodeEncode(bytes.NewReader(f.data), nil); err != nil || n != f.events {
				b.Fatalf("decode: %d events, %v", n, err)
			}
		}
		perStream(b)
	})
	events := f.decoded(b)
	b.Run("part=engine", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			eng := engine.New()
			for k := range events {
				if _, err := eng.Process(f.set, &events[k]); err != nil {
					b.Fatal(err)
				}
			}
		}
		perStream(b)
	})
	decisions := f.decisions(b, events)
	b.Run("part=encode-decisions", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bw := bufio.NewWriterSize(io.Discard, 1<<16)
			enc := json.NewEncoder(bw)
			enc.SetEscapeHTML(false)
			for k := range decisions {
				if err := enc.Encode(decisions[k]); err != nil {
					b.Fatal(err)
				}
			}
			bw.Flush()
		}
		perStream(b)
	})
	b.Run("part=encode-decisions-without-marshaler", func(b *testing.B) {
		b.SetBytes(int64(len(f.data)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bw := bufio.NewWriterSize(io.Discard, 1<<16)
			enc := json.NewEncoder(bw)
			enc.SetEscapeHTML(false)
			for k := range decisions {
				// Same fields and tags, no MarshalJSON (no duplicates in
				// this stream, so the output is the same).
				if err := enc.Encode(plainDecision(decisions[k])); err != nil {
					b.Fatal(err)
				}
			}
			bw.Flush()
		}
		perStream(b)
	})
}

// plainDecision is schemas.Decision without its methods.
type plainDecision schemas.Decision

// decoded returns the stream's events, decoded.
func (f *replayFixture) decoded(tb testing.TB) []schemas.Event {
	events := make([]schemas.Event, 0, f.events)
	for _, line := range bytes.Split(bytes.TrimSpace(f.data), []byte("\n")) {
		var ev schemas.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			tb.Fatal(err)
		}
		events = append(events, ev)
	}
	return events
}

// decisions returns the decisions replay makes for events.
func (f *replayFixture) decisions(tb testing.TB, events []schemas.Event) []schemas.Decision {
	eng := engine.New()
	out := make([]schemas.Decision, len(events))
	for k := range events {
		d, err := eng.Process(f.set, &events[k])
		if err != nil || d.Duplicate {
			tb.Fatalf("%s: duplicate %v, %v", events[k].ID, d.Duplicate, err)
		}
		out[k] = d
	}
	return out
}

// TestReplayBenchmarkInput checks, untimed, that the generated stream is a
// realistic one for the examples: every line is a valid event, the rules
// escalate some conversations and let the bot keep the rest, and it logs
// how often an escalation found nobody free and queued. With
// TRIAGE_BENCH_BACKLOG=1 it checks the triage-backlog stream too.
func TestReplayBenchmarkInput(t *testing.T) {
	// It replays 100,000 events (minutes under -race), and it checks the
	// benchmark's input rather than triage, so it runs on request: with the
	// benchmarks, as docs/benchmarks.md says.
	if os.Getenv("TRIAGE_BENCH_CHECK") != "1" {
		t.Skip("set TRIAGE_BENCH_CHECK=1 to check the 100,000-event benchmark stream")
	}
	streams := []float64{0}
	if os.Getenv("TRIAGE_BENCH_BACKLOG") == "1" {
		streams = append(streams, replayBacklogAbandoned)
	}
	for _, abandoned := range streams {
		f := newReplayFixture(t, abandoned)
		var out, errs bytes.Buffer
		bad, err := replay(f.set, bytes.NewReader(f.data), "bench.jsonl", &out, &errs, time.Time{})
		if err != nil || bad != 0 {
			t.Fatalf("replay: %d bad, %v\n%s", bad, err, errs.String())
		}
		outBytes := out.Len()
		counts := map[string]int{}
		types := map[string]int{}
		assigned, queued, drained := 0, 0, 0
		dec := json.NewDecoder(&out)
		n := 0
		for dec.More() {
			var d schemas.Decision
			if err := dec.Decode(&d); err != nil {
				t.Fatal(err)
			}
			n++
			types[d.Event.Type]++
			for _, m := range d.Matched {
				counts[m]++
			}
			for _, a := range d.Actions {
				if a.Type == "assign" {
					if _, ok := a.Result["queued"]; ok {
						queued++
					} else {
						assigned++
					}
				}
			}
			drained += len(d.Assignments)
		}
		if n != f.events {
			t.Fatalf("%d decisions for %d events", n, f.events)
		}
		for _, rule := range []string{"human-keyword", "refund", "complaint", "low-confidence", "relay-bot-answer", "ask-bot"} {
			if counts[rule] == 0 {
				t.Errorf("rule %s never matched: the stream does not exercise it", rule)
			}
		}
		t.Logf("abandoned %.0f%%: %d events, %d bytes in, %d bytes of decisions out; types %v; matched %v; assign: %d to an agent at once, %d queued, %d later from the queue",
			100*abandoned, n, len(f.data), outBytes, types, counts, assigned, queued, drained)
	}
}

// The SLA week: a generated week of traffic for 500 conversations through
// the examples (whose SLA policies run on an office calendar), replayed
// with --until two days after the last event so every deadline fires.
const (
	slaWeekEvents        = 10_000
	slaWeekConversations = 500
)

// BenchmarkReplaySLAWeek measures the SLA figure: a week of
// traffic for 500 conversations with --until at the end, against the bare
// decode + encode of the same stream in the same run.
func BenchmarkReplaySLAWeek(b *testing.B) {
	set, err := rules.Load("../../examples/rules", rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	agents := benchgen.Agents(set)
	events := benchgen.Stream(benchgen.StreamConfig{
		Events: slaWeekEvents, Conversations: slaWeekConversations, Active: 40,
		Seed: benchgen.Seed, Keywords: []string{"human", "refund", "now", "complaint"}, KeywordRate: 0.2,
		Agents: agents, LowConfidence: 0.3, AgentEpisodes: 0.6,
		MeanGap: 7 * 24 * time.Hour / slaWeekEvents,
	})
	data := benchgen.JSONLines(events)
	until := events[len(events)-1].At.Add(48 * time.Hour)
	var out bytes.Buffer
	if bad, err := replay(set, bytes.NewReader(data), "week.jsonl", &out, io.Discard, until); err != nil || bad != 0 {
		b.Fatalf("replay: %d bad, %v", bad, err)
	}
	fired := bytes.Count(out.Bytes(), []byte(`"type":"sla.`))
	span := events[len(events)-1].At.Sub(events[0].At)
	b.Logf("%d events over %s, %d SLA events fired", len(events), span.Round(time.Hour), fired)
	b.Run("triage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := replay(set, bytes.NewReader(data), "week.jsonl", io.Discard, io.Discard, until); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(fired), "sla-events/op")
	})
	b.Run("decode-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEncode(bytes.NewReader(data), io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
