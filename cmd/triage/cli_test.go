package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/triage-dev/triage/schemas"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errw)
	return code, out.String(), errw.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no command", nil, exitUsage},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"check without dir", []string{"check"}, exitUsage},
		{"check missing dir", []string{"check", "testdata/does-not-exist"}, exitUsage},
		{"check clean", []string{"check", "../../examples/rules"}, exitOK},
		{"test examples", []string{"test", "../../examples/rules"}, exitOK},
		{"test bad --run", []string{"test", "--run", "(", "../../examples/rules"}, exitUsage},
		{"replay missing events file", []string{"replay", "--rules", "../../examples/rules", "--events", "nope.jsonl"}, exitUsage},
		{"replay with a bad line", []string{"replay", "--rules", "../../examples/rules", "--events", "testdata/replay/events.jsonl"}, exitProblem},
		{"explain missing event", []string{"explain", "--rules", "../../examples/rules"}, exitUsage},
		{"help", []string{"--help"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	code, out, errs := runCLI(t, "", "replay", "--rules", "../../examples/rules", "--events", "testdata/replay/events.jsonl")
	if code != exitProblem {
		t.Fatalf("exit %d, want %d", code, exitProblem)
	}
	// Bad lines are reported with their line numbers and skipped.
	for _, want := range []string{"events.jsonl:6: invalid JSON", `events.jsonl:7: invalid event: unknown type "message.sent"`, "2 event(s) refused"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d decisions, want 5:\n%s", len(lines), out)
	}
	var ds []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		ds = append(ds, m)
	}
	// Section 8: keys, empty lists as [], the duplicate's short form.
	for _, k := range []string{"event", "ruleset", "matched", "actions", "errors", "conversation"} {
		if _, ok := ds[0][k]; !ok {
			t.Errorf("decision lacks %q: %s", k, lines[0])
		}
	}
	if !strings.Contains(lines[0], `"errors":[]`) || !strings.Contains(lines[0], `"tags":[]`) {
		t.Errorf("empty lists must print as []: %s", lines[0])
	}
	if !strings.HasPrefix(ds[0]["ruleset"].(string), "sha256:") || len(ds[0]["ruleset"].(string)) != len("sha256:")+12 {
		t.Errorf("ruleset %v is not sha256:<12 hex>", ds[0]["ruleset"])
	}
	var dup map[string]any
	_ = json.Unmarshal([]byte(lines[3]), &dup)
	if len(dup) != 2 || dup["duplicate"] != true {
		t.Errorf("duplicate must be {event, duplicate: true}, got %s", lines[3])
	}
	var d schemas.Decision
	if err := json.Unmarshal([]byte(lines[2]), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Matched) != 1 || d.Matched[0] != "human-keyword" || d.Conversation.Assignee != "anita" {
		t.Errorf("m2: matched %v assignee %q", d.Matched, d.Conversation.Assignee)
	}
	// 2026-11-21 is a Saturday: the office is closed, and the message says
	// so rather than promise five minutes.
	if got := d.Actions[2].Params["text"]; got != "Of course. I'm bringing in Anita from our team; they'll reply as soon as our office opens." {
		t.Errorf("handoff text %q", got)
	}
}

func TestReplayStdin(t *testing.T) {
	data, err := os.ReadFile("testdata/replay/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	_, fromFile, _ := runCLI(t, "", "replay", "--rules", "../../examples/rules", "--events", "testdata/replay/events.jsonl")
	_, fromStdin, _ := runCLI(t, string(data), "replay", "--rules", "../../examples/rules", "--events", "-")
	if fromFile != fromStdin {
		t.Errorf("stdin and file replays differ")
	}
}

func TestReplayBrokenRules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/r.yaml", []byte("version: 1\nrules:\n  - name: x\n    on: [message.received]\n    when: event.txt == \"\"\n    actions: [ask_bot]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "", "replay", "--rules", dir, "--events", "-")
	if code != exitProblem || !strings.Contains(errs, "r.yaml:5:17: event has no field txt (did you mean text?)") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}

func TestExplain(t *testing.T) {
	event := `{"id":"e1","type":"message.received","at":"2026-11-21T10:00:00Z","conversation":"c9","text":"I want my money back, this is broken"}`
	dir := t.TempDir()
	state := dir + "/state.json"
	if err := os.WriteFile(state, []byte(`{"conversation":{"bot_turns":1,"tags":["vip"]},"contact":{"name":"Meera"},"agents":{"dev":"offline"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, event, "explain", "--rules", "../../examples/rules", "--event", "-", "--state", state)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"no match  human-keyword  (priority 100, stop)  ../../examples/rules/escape-hatch.yaml:8:5",
		"            false  wants_human\n            -      bot_handles  (not evaluated: decided before it)\n            (joined by &&)",
		"MATCHED   refund  (priority 80, stop)",
		`not evaluated: "refund" matched first and stops`,
		`refund/assign {"skills":["refunds"],"team":"billing"} -> applied {"agent":"erin"}`, // dev is offline
		"Urgent from Meera: I want my money back",
		"tags=[vip urgent refund] bot_turns=1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A decision line from replay works as --state, and json output parses.
	code, out, _ = runCLI(t, event, "explain", "--rules", "../../examples/rules", "--event", "-", "--format", "json")
	var rep explainReport
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Rules) == 0 {
		t.Fatalf("json explain: exit %d\n%s", code, out)
	}
}

func TestUnknownEventFields(t *testing.T) {
	events := `{"id":"a","type":"bot.answered","at":"2026-11-21T10:00:00Z","conversation":"c1","confidance":0.9,"txt":"x","contact":{"nmae":"y"}}
{"id":"b","type":"bot.answered","at":"2026-11-21T10:00:00Z","conversation":"c2","confidance":0.9}
`
	code, out, errs := runCLI(t, events, "replay", "--rules", "../../examples/rules", "--events", "-")
	if code != exitOK || strings.Count(out, "\n") != 2 {
		t.Fatalf("replay keeps going on unknown fields: exit %d\n%s", code, out)
	}
	for _, f := range []string{"confidance", "txt", "contact.nmae"} {
		if strings.Count(errs, `unknown event field "`+f+`"`) != 1 {
			t.Errorf("want one warning naming %s and its line:\n%s", f, errs)
		}
	}
	code, _, errs = runCLI(t, strings.SplitN(events, "\n", 2)[0], "explain", "--rules", "../../examples/rules", "--event", "-")
	if code != exitUsage || !strings.Contains(errs, `unknown field "confidance"`) {
		t.Errorf("explain must refuse an unknown field: exit %d, %s", code, errs)
	}
}

// TestExplainGuard: a guard that stops an && before an index out of range
// shows as the reason, not as an error the engine never met.
func TestExplainGuard(t *testing.T) {
	dir := t.TempDir()
	rule := "version: 1\nrules:\n  - name: g\n    on: [message.received]\n    when: len(conversation.tags) > 5 && conversation.tags[5] == \"x\"\n    actions: [ask_bot]\n"
	if err := os.WriteFile(dir+"/r.yaml", []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := `{"id":"e1","type":"message.received","at":"2026-11-21T10:00:00Z","conversation":"c1","text":"hi"}`
	code, out, errs := runCLI(t, ev, "explain", "--rules", dir, "--event", "-")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "            false  len(conversation.tags) > 5\n            -      conversation.tags[5] == \"x\"  (not evaluated: decided before it)\n"
	if !strings.Contains(out, want) || strings.Contains(out, "out of range") {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	// A state with a typo or an impossible value is refused, not used.
	state := dir + "/s.json"
	for _, bad := range []string{`{"handlr":"human"}`, `{"status":"closed"}`, `{"bot_turns":-1}`} {
		if err := os.WriteFile(state, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errs := runCLI(t, ev, "explain", "--rules", dir, "--event", "-", "--state", state); code != exitUsage {
			t.Errorf("state %s: exit %d, %s", bad, code, errs)
		}
	}
}
