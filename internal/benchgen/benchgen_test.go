package benchgen

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/triage-dev/triage/engine"
)

func TestSyntheticSetIsDeterministic(t *testing.T) {
	a := SyntheticSet(500, 500, 5, Seed)
	b := SyntheticSet(500, 500, 5, Seed)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different rule set")
	}
	inLists := map[string]int{}
	for i, l := range a.Lists {
		seen := map[string]bool{}
		for _, w := range l {
			if seen[w] {
				t.Fatalf("list %d repeats %q", i, w)
			}
			seen[w] = true
			inLists[w]++
		}
	}
	shared := 0
	for _, n := range inLists {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no word is in two lists")
	}
	t.Logf("%d distinct words in lists, %d of them in more than one list", len(inLists), shared)
}

func TestStreamIsValidAndDeterministic(t *testing.T) {
	cfg := StreamConfig{Events: 5000, Conversations: 300, Active: 20, Seed: Seed,
		Keywords: []string{"refund", "speak to someone"}, KeywordRate: 0.2, Agents: []string{"a", "b"}}
	events := Stream(cfg)
	if len(events) != cfg.Events {
		t.Fatalf("%d events", len(events))
	}
	ids := map[string]bool{}
	for i := range events {
		ev := &events[i]
		if err := engine.Validate(ev); err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
		if ids[ev.ID] {
			t.Fatalf("duplicate id %s", ev.ID)
		}
		ids[ev.ID] = true
		if i > 0 && ev.At.Before(events[i-1].At) {
			t.Fatalf("%s goes back in time", ev.ID)
		}
	}
	if !bytes.Equal(JSONLines(events), JSONLines(Stream(cfg))) {
		t.Fatal("same seed, different stream")
	}
}
