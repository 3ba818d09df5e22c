package rules_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
	"github.com/triage-dev/triage/textmatch"
)

// mustLoad compiles one file and fails the test on any problem, warnings
// included unless allowWarnings.
func mustLoad(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Compile(one(src), rules.Options{Dir: "rules"})
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	return set
}

// state is one evaluation's inputs.
type state struct {
	ev       schemas.Event
	conv     schemas.Conversation
	contact  schemas.Contact
	assignee schemas.Assignee
	eta      int
}

func (s *state) bind(env *rules.Env) {
	env.Bind(&s.ev, &s.conv, &s.contact, &s.assignee, s.eta)
}

func match(t *testing.T, set *rules.Set, env *rules.Env, name string) bool {
	t.Helper()
	r := set.Rule(name)
	if r == nil {
		t.Fatalf("no rule %q", name)
	}
	ok, err := r.Match(env)
	if err != nil {
		t.Fatalf("rule %s: %v", name, err)
	}
	return ok
}

const matchSet = `version: 1
lists:
  human: [human, agent, "speak to someone", "real person"]
  urgent: [emergency, now, broken]
rules:
  - name: named-list
    on: [message.received]
    when: contains_any(event.text, lists.human)
    actions: [ask_bot]
  - name: inline-list
    on: [message.received]
    when: contains_any(event.text, ["money back", "Refund"])
    actions: [ask_bot]
  - name: topic-list
    on: [message.received]
    when: contains_any(event.topic, lists.human)
    actions: [ask_bot]
  - name: contact-inline
    on: [message.received]
    when: contains_any(contact.name, ["support bot", "test"])
    actions: [ask_bot]
  - name: dynamic-list
    on: [message.received]
    when: contains_any(event.text, conversation.tags)
    actions: [ask_bot]
  - name: word
    on: [message.received]
    when: contains_word(event.text, "now")
    actions: [ask_bot]
  - name: word-topic
    on: [message.received]
    when: contains_word(event.topic, "urgent")
    actions: [ask_bot]
  - name: word-dynamic
    on: [message.received]
    when: contains_word(event.text, event.payload)
    actions: [ask_bot]
  - name: urgent-not-human
    on: [message.received]
    when: contains_any(event.text, lists.urgent) && !contains_any(event.text, lists.human)
    actions: [ask_bot]
  - name: regexp-call
    on: [message.received]
    when: 'matches(event.text, "^order #?[0-9]+$")' 
    actions: [ask_bot]
  - name: regexp-operator
    on: [message.received]
    when: event.text matches "(?i)^hi\\b"
    actions: [ask_bot]
  - name: regexp-dynamic
    on: [message.received]
    when: event.payload != "" && matches(event.text, event.payload)
    actions: [ask_bot]
  - name: regexp-not
    on: [message.received]
    when: not matches(event.text, "[0-9]") && event.text != ""
    actions: [ask_bot]
`

func TestMatchFunctions(t *testing.T) {
	set := mustLoad(t, matchSet)
	env := set.NewEnv()
	tests := []struct {
		text, topic, payload, contact string
		tags                          []string
		want                          []string // the rules that match
	}{
		{text: "Can I SPEAK TO SOMEONE?", want: []string{"named-list", "regexp-not"}},
		{text: "I know what I want", want: []string{"regexp-not"}},
		{text: "I need it now", want: []string{"word", "urgent-not-human", "regexp-not"}},
		{text: "broken, give me a human now", want: []string{"named-list", "word", "regexp-not"}},
		{text: "I want my MONEY  back", want: []string{"inline-list", "regexp-not"}},
		{text: "refunds please", want: []string{"regexp-not"}},
		{text: "where is my refund?", want: []string{"inline-list", "regexp-not"}},
		{text: "order #123", want: []string{"regexp-call"}},
		{text: "order 123 please", want: nil},
		{text: "Hi there", want: []string{"regexp-operator", "regexp-not"}},
		{text: "High time", want: []string{"regexp-not"}},
		{text: "x", topic: "Real Person", want: []string{"topic-list", "regexp-not"}},
		{text: "x", topic: "very urgent", want: []string{"word-topic", "regexp-not"}},
		{text: "x", topic: "urgently", want: []string{"regexp-not"}},
		{text: "x", contact: "Support Bot", want: []string{"contact-inline", "regexp-not"}},
		{text: "the vip lounge", tags: []string{"vip", "other"}, want: []string{"dynamic-list", "regexp-not"}},
		{text: "Please call", payload: "CALL", want: []string{"word-dynamic", "regexp-not"}},
		{text: "abc", payload: "^a.c$", want: []string{"regexp-dynamic", "regexp-not"}},
		{text: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.text+"/"+tt.topic+tt.payload+tt.contact, func(t *testing.T) {
			s := state{
				ev:      schemas.Event{Type: "message.received", Text: tt.text, Topic: tt.topic, Payload: tt.payload},
				conv:    schemas.Conversation{Tags: tt.tags},
				contact: schemas.Contact{Name: tt.contact},
			}
			s.bind(env)
			var got []string
			for _, r := range set.Rules() {
				ok, err := r.Match(env)
				if err != nil {
					t.Errorf("%s: %v", r.Name, err)
				}
				if ok {
					got = append(got, r.Name)
				}
			}
			diffLines(t, "matched", got, tt.want)
		})
	}
}

// TestMatchRebind: a second Bind replaces the first event completely,
// keyword hits included, and two Envs of one set do not share state.
func TestMatchRebind(t *testing.T) {
	set := mustLoad(t, matchSet)
	e1, e2 := set.NewEnv(), set.NewEnv()
	s1 := state{ev: schemas.Event{Type: "message.received", Text: "a human please"}}
	s2 := state{ev: schemas.Event{Type: "message.received", Text: "nothing"}}
	s1.bind(e1)
	s2.bind(e2)
	if !match(t, set, e1, "named-list") || match(t, set, e2, "named-list") {
		t.Errorf("envs share keyword hits")
	}
	s2.bind(e1)
	if match(t, set, e1, "named-list") {
		t.Errorf("rebinding kept the old keyword hits")
	}
}

func TestMatchRuntimeErrors(t *testing.T) {
	set := mustLoad(t, `version: 1
lists:
  a: [x]
rules:
  - name: index
    on: [message.received]
    when: conversation.tags[5] == "x"
    actions: [ask_bot]
  - name: index-after-keyword
    on: [message.received]
    when: conversation.tags[5] == "x" && contains_any(event.text, lists.a)
    actions: [ask_bot]
  - name: bad-dynamic-regexp
    on: [message.received]
    when: matches(event.text, event.payload)
    actions: [ask_bot]
`)
	env := set.NewEnv()
	s := state{ev: schemas.Event{Text: "no keyword here", Payload: "("}, conv: schemas.Conversation{Tags: []string{"a"}}}
	s.bind(env)
	for _, name := range []string{"index", "index-after-keyword", "bad-dynamic-regexp"} {
		ok, err := set.Rule(name).Match(env)
		if err == nil || ok {
			t.Errorf("%s: Match = %v, %v; want false and an error", name, ok, err)
			continue
		}
		if !strings.Contains(err.Error(), "rule "+name+": when:") {
			t.Errorf("%s: error %q does not name the rule", name, err)
		}
	}
	// With enough tags the same rule evaluates cleanly.
	s.conv.Tags = []string{"0", "1", "2", "3", "4", "x"}
	if !match(t, set, env, "index") {
		t.Errorf("index: no match with tags[5] == x")
	}
}

// TestMatchSeesStateThroughPointers: the env reads the conversation,
// contact and assignee through the pointers given to Bind, so what actions
// change later is what later rules see.
func TestMatchSeesStateThroughPointers(t *testing.T) {
	set := mustLoad(t, `version: 1
rules:
  - name: vip
    on: [message.received]
    when: '"vip" in conversation.tags'
    actions: [ask_bot]
  - name: urgent
    on: [message.received]
    when: conversation.priority == "urgent" && conversation.handler == "human"
    actions: [ask_bot]
  - name: assigned
    on: [message.received]
    when: assignee.id != "" && contact.opted_out == false
    actions: [ask_bot]
  - name: eta
    on: [message.received]
    when: eta_minutes > 3
    actions: [ask_bot]
  - name: always
    on: [message.received]
    when: TRUE
    actions: [ask_bot]
  - name: never
    on: [message.received]
    when: False
    actions: [ask_bot]
`)
	env := set.NewEnv()
	s := state{eta: 1}
	s.bind(env)
	for _, name := range []string{"vip", "urgent", "assigned", "eta", "never"} {
		if match(t, set, env, name) {
			t.Errorf("%s matches before the change", name)
		}
	}
	if !match(t, set, env, "always") {
		t.Errorf("when: TRUE does not match")
	}
	s.conv.Tags = append(s.conv.Tags, "vip")
	s.conv.Priority, s.conv.Handler = "urgent", "human"
	s.assignee = schemas.Assignee{ID: "anita", Name: "Anita Rao", FirstName: "Anita"}
	env.SetETA(4)
	for _, name := range []string{"vip", "urgent", "assigned", "eta"} {
		if !match(t, set, env, name) {
			t.Errorf("%s does not see the change", name)
		}
	}
	s.contact.OptedOut = true
	if match(t, set, env, "assigned") {
		t.Errorf("assigned does not see the contact opt out")
	}
}

func TestRender(t *testing.T) {
	set := mustLoad(t, `version: 1
teams:
  support:
    members: [{id: anita, name: Anita Rao}]
macros:
  handoff_name: 'assignee.id != "" ? assignee.first_name : "a teammate"'
  shout: upper(event.text)
rules:
  - name: r
    on: [message.received]
    actions:
      - assign: {team: support}
      - reply: {text: "I'm bringing in {{ handoff_name }}; reply within {{ eta_minutes }} minutes."}
      - note:
          text: "{{ shout }} at {{ now }}: {{ event.confidence * 100 }}% {{ conversation.tags }} {{ conversation.bot_turns > 1 }} {{ nil }}{{ \"}}\" }}"
      - tag: {add: [plain, "t-{{ event.topic }}"], remove: [old]}
      - send_template: {name: hello, language: en, params: ["{{ contact.name }}", "x"]}
      - escalate: {reason: keyword, tier: 2}
      - note: {text: "{{ conversation.tags[3] }}"}
`)
	env := set.NewEnv()
	at := time.Date(2026, 11, 21, 10, 2, 0, 0, time.UTC)
	s := state{
		ev:      schemas.Event{Type: "message.received", At: at, Text: "help me", Confidence: 0.5, Topic: "refund"},
		conv:    schemas.Conversation{Tags: []string{"a", "b"}, BotTurns: 2},
		contact: schemas.Contact{Name: "Ravi"},
		eta:     5,
	}
	s.bind(env)
	acts := set.Rule("r").Actions
	render := func(i int) map[string]any {
		t.Helper()
		out, err := acts[i].Render(env)
		if err != nil {
			t.Fatalf("action %d (%s): %v", i, acts[i].Type, err)
		}
		return out
	}
	check := func(i int, want map[string]any) {
		t.Helper()
		if got := render(i); !reflect.DeepEqual(got, want) {
			t.Errorf("action %d (%s) = %#v, want %#v", i, acts[i].Type, got, want)
		}
	}
	check(0, map[string]any{"team": "support"})
	check(1, map[string]any{"text": "I'm bringing in a teammate; reply within 5 minutes."})
	s.assignee = schemas.Assignee{ID: "anita", Name: "Anita Rao", FirstName: "Anita"}
	env.SetETA(3)
	check(1, map[string]any{"text": "I'm bringing in Anita; reply within 3 minutes."})
	check(2, map[string]any{"text": "HELP ME at 2026-11-21T10:02:00Z: 50% a, b true }}"})
	check(3, map[string]any{"add": []any{"plain", "t-refund"}, "remove": []any{"old"}})
	check(4, map[string]any{"name": "hello", "language": "en", "params": []any{"Ravi", "x"}})
	check(5, map[string]any{"reason": "keyword", "tier": 2})
	if _, err := acts[6].Render(env); err == nil || !strings.Contains(err.Error(), "text: template") {
		t.Errorf("out-of-range index in a template: err = %v", err)
	}
	s.conv.Tags = []string{"0", "1", "2", "three"}
	check(6, map[string]any{"text": "three"})
}

func TestBlankMemberNameFallsBackToID(t *testing.T) {
	set := mustLoad(t, `version: 1
teams:
  support:
    members:
      - {id: anita, name: "  "}
      - {id: ben}
      - {id: carla, name: "  Carla   Mendes "}
rules:
  - name: r
    on: [message.received]
    actions: [{assign: {team: support}}]
`)
	for id, want := range map[string][2]string{"anita": {"anita", "anita"}, "ben": {"ben", "ben"}, "carla": {"  Carla   Mendes ", "Carla"}} {
		a := set.Agent(id)
		if a == nil || a.Name != want[0] || a.FirstName != want[1] {
			t.Errorf("Agent(%s) = %+v, want name %q, first name %q", id, a, want[0], want[1])
		}
	}
}

// TestPrefilterNeverChangesAResult is a property test: the keyword fast
// paths (the per-event keyword table, the prefilter that skips the VM, the
// precompiled lists) must give exactly what the plain expressions give
// when contains_any and contains_word are ordinary functions.
func TestPrefilterNeverChangesAResult(t *testing.T) {
	lists := map[string][]string{
		"a": {"human", "agent", "speak to someone", "real person"},
		"b": {"refund", "money back", "now"},
		"c": {"straße", "café", "ΟΔΥΣΣΕΥΣ"},
	}
	keyword := []string{
		`contains_any(event.text, lists.a)`,
		`contains_any(event.text, ["refund", "speak to someone"])`,
		`contains_word(event.text, "agent")`,
		`contains_any(event.text, lists.c)`,
	}
	other := []string{
		`conversation.bot_turns >= 2`,
		`event.confidence < 0.5`,
		`conversation.tags[0] == "vip"`, // fails at run time without tags
		`"vip" in conversation.tags`,
		`contains_any(event.text, lists.b)`,
		`!contains_any(event.text, lists.c)`,
		`event.kind == "text"`,
		`len(event.text) > 12`,
		`contains_word(event.text, "now")`,
		`contains_any(event.topic, lists.a)`,
		`1 / conversation.bot_turns > 0`, // integer division by zero is an error
	}
	shapes := []string{
		`%[1]s && %[2]s`,
		`%[2]s && %[1]s`,
		`%[1]s || %[2]s`,
		`%[2]s || %[1]s`,
		`!%[1]s && %[2]s`,
		`%[2]s && %[3]s && %[1]s`,
		`%[1]s and %[2]s and %[3]s`,
		`(%[1]s && %[2]s) || %[3]s`,
		`%[1]s`,
		`%[2]s ? %[1]s : %[3]s`,
	}
	var whens []string
	for _, sh := range shapes {
		for _, k := range keyword {
			for i, x := range other {
				whens = append(whens, fmt.Sprintf(sh, k, x, other[(i+3)%len(other)]))
			}
		}
	}
	var src strings.Builder
	src.WriteString("version: 1\nlists:\n")
	for _, n := range []string{"a", "b", "c"} {
		q := make([]string, len(lists[n]))
		for i, w := range lists[n] {
			q[i] = strconv.Quote(w)
		}
		fmt.Fprintf(&src, "  %s: [%s]\n", n, strings.Join(q, ", "))
	}
	src.WriteString("rules:\n")
	for i, w := range whens {
		fmt.Fprintf(&src, "  - name: r%d\n    on: [message.received]\n    when: %q\n    actions: [ask_bot]\n", i, w)
	}
	set := mustLoad(t, src.String())

	// The reference: the same text, plain functions, no patches.
	refOpts := []expr.Option{
		expr.Env(map[string]any{
			"event":        &rules.EventEnv{},
			"conversation": &schemas.Conversation{},
			"lists":        lists,
		}),
		expr.AsBool(),
		expr.Function("contains_any", func(p ...any) (any, error) {
			switch l := p[1].(type) {
			case []string:
				return textmatch.ContainsAny(p[0].(string), l), nil
			case []any:
				var words []string
				for _, w := range l {
					words = append(words, w.(string))
				}
				return textmatch.ContainsAny(p[0].(string), words), nil
			}
			return nil, fmt.Errorf("bad list %T", p[1])
		}, new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("contains_word", func(p ...any) (any, error) {
			return textmatch.ContainsAny(p[0].(string), []string{p[1].(string)}), nil
		}, new(func(string, string) bool)),
	}
	refs := make([]*vm.Program, len(whens))
	for i, w := range whens {
		p, err := expr.Compile(w, refOpts...)
		if err != nil {
			t.Fatalf("reference %q: %v", w, err)
		}
		refs[i] = p
	}
	if len(set.Rules()) != len(whens) {
		t.Fatalf("%d rules loaded, want %d", len(set.Rules()), len(whens))
	}

	words := []string{
		"human", "HUMAN", "humans", "agent", "Agent!", "speak", "to", "someone", "SPEAK TO SOMEONE",
		"real", "person", "refund", "refunds", "money", "back", "now", "know", "nowhere",
		"Strasse", "STRASSE", "Straße", "café", "Cafe\u0301", "οδυσσευς", "vip", "the", "a",
		"please", "?", "!!", ",", "…", "😀", "speak-to-someone", "agent's", "1234",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	env := set.NewEnv()
	var ref vm.VM
	differ, errs, hits := 0, 0, 0
	for iter := 0; iter < 400; iter++ {
		n := rng.IntN(8)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = words[rng.IntN(len(words))]
		}
		sep := []string{" ", "  ", "", "\t", "\n", "-", "."}[rng.IntN(7)]
		s := state{
			ev: schemas.Event{
				Type: "message.received", Text: strings.Join(parts, sep),
				Kind: []string{"text", "image"}[rng.IntN(2)], Confidence: rng.Float64(),
				Topic: []string{"", "human", "Real Person", "refund"}[rng.IntN(4)],
			},
			conv: schemas.Conversation{BotTurns: rng.IntN(4)},
		}
		for _, tag := range []string{"vip", "x"} {
			if rng.IntN(3) == 0 {
				s.conv.Tags = append(s.conv.Tags, tag)
			}
		}
		s.bind(env)
		refEnv := map[string]any{
			"event": &rules.EventEnv{
				Type: s.ev.Type, Text: s.ev.Text, Kind: s.ev.Kind,
				Confidence: s.ev.Confidence, Topic: s.ev.Topic,
			},
			"conversation": &s.conv,
			"lists":        lists,
		}
		for i, r := range set.Rules() {
			got, gotErr := r.Match(env)
			v, wantErr := ref.Run(refs[i], refEnv)
			want, _ := v.(bool)
			if wantErr != nil {
				want = false
				errs++
			}
			if got {
				hits++
			}
			if got != want || (gotErr != nil) != (wantErr != nil) {
				differ++
				if differ <= 10 {
					t.Errorf("when %s\ntext %q tags %q bot_turns %d:\nMatch = %v, %v\nplain = %v, %v",
						whens[i], s.ev.Text, s.conv.Tags, s.conv.BotTurns, got, gotErr, want, wantErr)
				}
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d evaluations differ", differ)
	}
	// The property is only worth something if both outcomes and errors
	// occurred.
	if hits == 0 || errs == 0 {
		t.Errorf("weak test: %d hits, %d errors", hits, errs)
	}
}
