package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/schemas"
)

func TestPostEvents(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 2, 0, 0, time.UTC)
	tests := []struct {
		name      string
		body      string
		submitErr error
		code      int
		accepted  int
		want      []schemas.Event // what Submit receives; nil: no Submit
		errHas    []string        // substrings of the error message
	}{
		{
			name: "single",
			body: `{"id":"b1","type":"bot.answered","at":"2026-11-21T10:02:00Z","conversation":"c1","text":"Try turning it off","confidence":0.42,"resolved":true}`,
			code: 202, accepted: 1,
			want: []schemas.Event{{ID: "b1", Type: "bot.answered", At: at, Conversation: "c1", Text: "Try turning it off", Confidence: 0.42, Resolved: true}},
		},
		{
			name: "array in order",
			body: ` [{"id":"a1","type":"agent.status","at":"2026-11-21T10:02:00Z","agent":"anita","status":"online"},
			        {"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z","conversation":"c1","contact":{"id":"u1","name":"Jo","language":"de"},"text":"hallo","kind":"text"}] `,
			code: 202, accepted: 2,
			want: []schemas.Event{
				{ID: "a1", Type: "agent.status", At: at, Agent: "anita", Status: "online"},
				{ID: "m1", Type: "message.received", At: at, Conversation: "c1", Contact: &schemas.Contact{ID: "u1", Name: "Jo", Language: "de"}, Text: "hallo", Kind: "text"},
			},
		},
		{
			name: "sla event",
			body: `{"id":"s1","type":"sla.breached","at":"2026-11-21T10:02:00Z","conversation":"c1","sla":{"policy":"std","metric":"first_response","due_at":"2026-11-21T10:02:00Z"}}`,
			code: 202, accepted: 1,
			want: []schemas.Event{{ID: "s1", Type: "sla.breached", At: at, Conversation: "c1", SLA: &schemas.SLAInfo{Policy: "std", Metric: "first_response", DueAt: at}}},
		},
		{name: "empty array", body: `[]`, code: 202, accepted: 0},
		{
			name: "unknown fields",
			body: `{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z","colour":"red","contact":{"id":"u1","nickname":"J"}}`,
			code: 400, errHas: []string{`"colour"`, `"contact.nickname"`},
		},
		{
			name: "unknown field in the second event",
			body: `[{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"},{"id":"m2","type":"message.received","at":"2026-11-21T10:02:00Z","confidance":0.9}]`,
			code: 400, errHas: []string{"event 1", `"confidance"`},
		},
		{
			name: "field in the wrong case",
			body: `{"ID":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"}`,
			code: 400, errHas: []string{`"ID"`},
		},
		{
			name: "wrong type",
			body: `{"id":"m1","type":"bot.answered","at":"2026-11-21T10:02:00Z","confidence":"high"}`,
			code: 400, errHas: []string{"confidence"},
		},
		{
			name: "bad time",
			body: `{"id":"m1","type":"message.received","at":"yesterday"}`,
			code: 400, errHas: []string{"yesterday"},
		},
		{name: "not JSON", body: `{"id":`, code: 400, errHas: []string{"not JSON"}},
		{name: "empty body", body: ``, code: 400, errHas: []string{"empty body"}},
		{name: "a string", body: `"m1"`, code: 400, errHas: []string{"event object"}},
		{name: "array of strings", body: `["m1"]`, code: 400, errHas: []string{"event 0", "not a JSON object"}},
		{name: "null in array", body: `[{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"},null]`, code: 400, errHas: []string{"event 1"}},
		{name: "two values", body: `{"id":"m1"} {"id":"m2"}`, code: 400, errHas: []string{"more than one"}},
		{
			name:      "invalid per backend",
			body:      `{"id":"m1","type":"message.sent","at":"2026-11-21T10:02:00Z"}`,
			submitErr: fmt.Errorf("event m1: type %q unknown: %w", "message.sent", ErrInvalid),
			code:      400, errHas: []string{"message.sent", "invalid event"},
		},
		{
			name:      "backend down",
			body:      `{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"}`,
			submitErr: errors.New("queue full"),
			code:      503,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			ts.b.submitErr = tt.submitErr
			w := ts.call("POST", "/v1/events", tokService, tt.body)
			if w.Code != tt.code {
				t.Fatalf("code = %d, want %d (body %q)", w.Code, tt.code, w.Body.String())
			}
			if tt.code == 202 {
				var got struct{ Accepted *int }
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Accepted == nil || *got.Accepted != tt.accepted {
					t.Errorf("body = %q, want {\"accepted\": %d}", w.Body.String(), tt.accepted)
				}
			} else {
				msg := errorOf(t, w)
				for _, s := range tt.errHas {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not mention %s", msg, s)
					}
				}
				if tt.code == 503 && strings.Contains(msg, "queue full") {
					t.Errorf("the answer shows the internal error %q", msg)
				}
			}
			subs := ts.b.submitted()
			if tt.want == nil {
				if len(subs) != 0 {
					t.Errorf("submitted %+v, want nothing", subs)
				}
				return
			}
			if len(subs) != 1 {
				t.Fatalf("%d Submit calls, want 1", len(subs))
			}
			if subs[0].by != "bot" {
				t.Errorf("submitted by %q, want the access entry's name bot", subs[0].by)
			}
			if !reflect.DeepEqual(subs[0].events, tt.want) {
				t.Errorf("submitted %+v\nwant      %+v", subs[0].events, tt.want)
			}
		})
	}
}

func TestPostEventsTooLarge(t *testing.T) {
	ts := newTestServer(t, nil)
	body := `[` + strings.Repeat(`{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"},`, maxEventsBody/60) + `{}]`
	w := ts.call("POST", "/v1/events", tokAdmin, body)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("code = %d, want 413", w.Code)
	}
	ts.b.nothingSubmitted(t)
}

// TestRoles is the table of spec section 11 for this API: role x endpoint
// -> status. A refused call changes nothing.
func TestRoles(t *testing.T) {
	event := `{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z","conversation":"c1"}`
	type endpoint struct {
		method, path, body string
	}
	var (
		events   = endpoint{"POST", "/v1/events", event}
		conv     = endpoint{"GET", "/v1/conversations/c1", ""}
		convs    = endpoint{"GET", "/v1/conversations", ""}
		rules    = endpoint{"GET", "/v1/rules", ""}
		reload   = endpoint{"POST", "/-/reload", ""}
		dead     = endpoint{"GET", "/v1/outbound/dead", ""}
		all      = []endpoint{events, conv, convs, rules, reload, dead}
		statuses = map[string]map[endpoint]int{
			// c1 is assigned to anita, so agent means anita here.
			"agent":      {events: 403, conv: 200, convs: 200, rules: 403, reload: 403, dead: 403},
			"supervisor": {events: 403, conv: 200, convs: 200, rules: 200, reload: 403, dead: 200},
			"admin":      {events: 202, conv: 200, convs: 200, rules: 200, reload: 200, dead: 200},
			"service":    {events: 202, conv: 403, convs: 403, rules: 403, reload: 403, dead: 403},
			"no token":   {events: 401, conv: 401, convs: 401, rules: 401, reload: 401, dead: 401},
			"unknown":    {events: 401, conv: 401, convs: 401, rules: 401, reload: 401, dead: 401},
		}
		tokens = map[string]string{
			"agent": tokAnita, "supervisor": tokSupervisor, "admin": tokAdmin, "service": tokService,
			"no token": "", "unknown": "tok-nobody-0123456789",
		}
	)
	for _, role := range []string{"agent", "supervisor", "admin", "service", "no token", "unknown"} {
		for _, ep := range all {
			t.Run(role+" "+ep.method+" "+ep.path, func(t *testing.T) {
				ts := newTestServer(t, nil)
				ts.b.convs["c1"] = ConversationView{Conversation: schemas.Conversation{ID: "c1", Assignee: "anita", Team: "support"}}
				w := ts.call(ep.method, ep.path, tokens[role], ep.body)
				want := statuses[role][ep]
				if w.Code != want {
					t.Fatalf("code = %d, want %d (body %q)", w.Code, want, w.Body.String())
				}
				if want == 401 {
					if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want Bearer ...", h)
					}
				} else if h := w.Header().Get("WWW-Authenticate"); h != "" {
					t.Errorf("WWW-Authenticate %q on a %d", h, want)
				}
				if want >= 400 {
					errorOf(t, w)
					ts.b.nothingSubmitted(t)
					if ts.b.reloads != 0 {
						t.Errorf("a refused call reloaded the rules")
					}
					ts.b.mu.Lock()
					n := len(ts.b.filters)
					ts.b.mu.Unlock()
					if n != 0 {
						t.Errorf("a refused call listed conversations")
					}
				}
			})
		}
	}
}

func TestAuthorizationHeader(t *testing.T) {
	tests := []struct {
		header string
		code   int
	}{
		{"Bearer " + tokAdmin, 200},
		{"bearer " + tokAdmin, 200},
		{"BEARER   " + tokAdmin + " ", 200},
		{"Bearer", 401},
		{"Bearer ", 401},
		{"Basic " + tokAdmin, 401},
		{tokAdmin, 401},
		{"Bearer " + tokAdmin + "x", 401},
		{"Bearer " + tokAdmin[:len(tokAdmin)-1], 401},
		{"Bearer " + strings.ToUpper(tokAdmin), 401},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			ts := newTestServer(t, nil)
			r := newRequest("GET", "/v1/rules", "")
			r.Header.Set("Authorization", tt.header)
			w := ts.do(r)
			if w.Code != tt.code {
				t.Fatalf("code = %d, want %d", w.Code, tt.code)
			}
		})
	}
}

// TestTokensNeverLogged makes known, unknown and refused calls at debug
// level and checks that no token shows up in the log.
func TestTokensNeverLogged(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.b.reloadErr = errors.New("rules/a.yaml:3:5: bad")
	unknown := "tok-guess-0123456789"
	ts.call("GET", "/v1/rules", tokAdmin, "")
	ts.call("GET", "/v1/rules", unknown, "")
	ts.call("POST", "/-/reload", tokAnita, "")
	ts.call("POST", "/-/reload", tokAdmin, "")
	ts.call("POST", "/v1/events", tokService, `{"bogus":1}`)
	ts.do(newRequest("GET", webhookPath+"?hub.mode=subscribe&hub.verify_token=wrong-verify&hub.challenge=1", ""))
	logs := ts.log.String()
	if logs == "" {
		t.Fatal("nothing logged at debug level")
	}
	for _, secret := range []string{tokAdmin, unknown, tokAnita, tokService, appSecret, verifyToken, "wrong-verify"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the secret %q:\n%s", secret, logs)
		}
	}
}

func TestConversationVisibility(t *testing.T) {
	convs := map[string]schemas.Conversation{
		"own":                            {ID: "own", Status: "open", Assignee: "anita", Team: "billing"},
		"team-waiting":                   {ID: "team-waiting", Status: "open", Team: "support"},
		"vip-waiting":                    {ID: "vip-waiting", Status: "open", Team: "vip"},
		"team-bobs":                      {ID: "team-bobs", Status: "open", Assignee: "bob", Team: "support"},
		"other-queue":                    {ID: "other-queue", Status: "open", Team: "billing"},
		"no-team":                        {ID: "no-team", Status: "open"},
		"wa:106540352242922:16505551234": {ID: "wa:106540352242922:16505551234", Assignee: "anita"},
		"slash/id":                       {ID: "slash/id", Assignee: "anita"},
	}
	tests := []struct {
		token, id string
		code      int
	}{
		{tokAnita, "own", 200},
		{tokAnita, "team-waiting", 200},
		{tokAnita, "vip-waiting", 200},
		{tokAnita, "team-bobs", 403},
		{tokAnita, "other-queue", 403},
		{tokAnita, "no-team", 403},
		{tokAnita, "missing", 404},
		{tokAnita, "wa:106540352242922:16505551234", 200},
		{tokAnita, "slash%2Fid", 200},
		{tokBob, "team-bobs", 200},
		{tokBob, "other-queue", 200},
		{tokBob, "own", 403},
		{tokSupervisor, "team-bobs", 200},
		{tokSupervisor, "no-team", 200},
		{tokSupervisor, "missing", 404},
		{tokAdmin, "other-queue", 200},
		{tokService, "own", 403},
		{tokService, "missing", 403},
	}
	for _, tt := range tests {
		t.Run(tt.token+" "+tt.id, func(t *testing.T) {
			ts := newTestServer(t, nil)
			for id, c := range convs {
				ts.b.convs[id] = ConversationView{Conversation: c}
			}
			w := ts.call("GET", "/v1/conversations/"+tt.id, tt.token, "")
			if w.Code != tt.code {
				t.Fatalf("code = %d, want %d (body %q)", w.Code, tt.code, w.Body.String())
			}
			if tt.code != 200 {
				errorOf(t, w)
				return
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"conversation", "contact", "messages", "notes", "decisions"} {
				if _, ok := got[k]; !ok {
					t.Errorf("answer lacks %q: %s", k, w.Body)
				}
			}
			for _, k := range []string{"messages", "notes", "decisions"} {
				if string(got[k]) != "[]" {
					t.Errorf("%s = %s, want []", k, got[k])
				}
			}
		})
	}

	t.Run("view content", func(t *testing.T) {
		ts := newTestServer(t, nil)
		at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
		view := ConversationView{
			Conversation: schemas.Conversation{ID: "c1", Status: "open", Assignee: "anita", Tags: []string{"vip"}},
			Contact:      schemas.Contact{ID: "u1", Name: "Jo"},
			Messages:     []Message{{At: at, From: "customer", Text: "hi"}, {At: at, From: "agent:anita", Text: "hello", Status: "read"}},
			Notes:        []Note{{At: at, Text: "called", Author: "anita"}},
			Decisions:    []schemas.Decision{{Event: schemas.Event{ID: "m1", Type: "message.received", At: at}, Matched: []string{"r1"}}},
		}
		ts.b.convs["c1"] = view
		view.Deliveries = []Delivery{} // none: printed [], not null
		w := ts.call("GET", "/v1/conversations/c1", tokAnita, "")
		var got ConversationView
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, view) {
			t.Errorf("got %+v\nwant %+v", got, view)
		}
	})

	t.Run("backend error", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.b.convErr = errors.New("pq: connection refused")
		w := ts.call("GET", "/v1/conversations/c1", tokAdmin, "")
		if w.Code != 500 || strings.Contains(errorOf(t, w), "pq") {
			t.Errorf("got %d %q, want 500 without the cause", w.Code, w.Body.String())
		}
	})
}

func TestListConversations(t *testing.T) {
	list := []ConversationSummary{
		{schemas.Conversation{ID: "own", Assignee: "anita", Team: "billing"}},
		{schemas.Conversation{ID: "team-waiting", Team: "support"}},
		{schemas.Conversation{ID: "team-bobs", Assignee: "bob", Team: "support"}},
		{schemas.Conversation{ID: "other-queue", Team: "billing"}},
	}
	tests := []struct {
		name   string
		token  string
		query  string
		filter Filter
		ids    []string
	}{
		{"agent", tokAnita, "", Filter{Teams: []string{"support", "vip"}, Agent: "anita", Limit: 1001}, []string{"own", "team-waiting"}},
		{"agent with query", tokAnita, "?status=open&team=support&assignee=bob",
			Filter{Status: "open", Team: "support", Assignee: "bob", Teams: []string{"support", "vip"}, Agent: "anita", Limit: 1001}, []string{"own", "team-waiting"}},
		{"supervisor", tokSupervisor, "?status=pending&team=support", Filter{Status: "pending", Team: "support", Limit: 1001}, []string{"own", "team-waiting", "team-bobs", "other-queue"}},
		{"admin", tokAdmin, "?assignee=bob", Filter{Assignee: "bob", Limit: 1001}, []string{"own", "team-waiting", "team-bobs", "other-queue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			ts.b.list = list
			w := ts.call("GET", "/v1/conversations"+tt.query, tt.token, "")
			if w.Code != 200 {
				t.Fatalf("code = %d (body %q)", w.Code, w.Body.String())
			}
			if len(ts.b.filters) != 1 || !reflect.DeepEqual(ts.b.filters[0], tt.filter) {
				t.Errorf("filter = %+v, want %+v", ts.b.filters, tt.filter)
			}
			ids, next := listed(t, w.Body.Bytes())
			if !reflect.DeepEqual(ids, tt.ids) || next != "" {
				t.Errorf("ids = %v next %q, want %v and no next page", ids, next, tt.ids)
			}
		})
	}

	t.Run("agent without teams", func(t *testing.T) {
		ts := newTestServer(t, func(c *Config) {
			c.Access = append(c.Access, Access{Name: "solo", Token: "tok-solo-0123456789", Role: RoleAgent, Agent: "solo"})
		})
		ts.call("GET", "/v1/conversations", "tok-solo-0123456789", "")
		if f := ts.b.filters[0]; f.Teams == nil || len(f.Teams) != 0 || f.Agent != "solo" {
			t.Errorf("filter = %#v, want non-nil empty Teams (an agent's view) and Agent solo", f)
		}
	})

	t.Run("pages", func(t *testing.T) {
		page := func(ids ...string) []ConversationSummary {
			var out []ConversationSummary
			for _, id := range ids {
				out = append(out, ConversationSummary{Conversation: schemas.Conversation{ID: id, Status: schemas.StatusOpen}})
			}
			return out
		}
		for _, tc := range []struct {
			query  string
			filter Filter
			ids    []string
			next   string
		}{
			{"?limit=2", Filter{Limit: 3}, []string{"c1", "c2"}, "c2"},
			{"?limit=2&after=c2", Filter{After: "c2", Limit: 3}, []string{"c3", "c4"}, ""},
			{"?limit=1&after=c3", Filter{After: "c3", Limit: 2}, []string{"c4"}, ""},
			{"?limit=3", Filter{Limit: 4}, []string{"c1", "c2", "c3"}, "c3"},
			{"?limit=4", Filter{Limit: 5}, []string{"c1", "c2", "c3", "c4"}, ""},
			{"?after=c4", Filter{After: "c4", Limit: 1001}, nil, ""},
		} {
			ts := newTestServer(t, nil)
			ts.b.list = page("c1", "c2", "c3", "c4")
			w := ts.call("GET", "/v1/conversations"+tc.query, tokAdmin, "")
			if w.Code != 200 {
				t.Fatalf("%s: code = %d (body %q)", tc.query, w.Code, w.Body.String())
			}
			if !reflect.DeepEqual(ts.b.filters, []Filter{tc.filter}) {
				t.Errorf("%s: filter = %+v, want %+v", tc.query, ts.b.filters, tc.filter)
			}
			ids, next := listed(t, w.Body.Bytes())
			if !reflect.DeepEqual(ids, tc.ids) || next != tc.next {
				t.Errorf("%s: ids %v next %q, want %v next %q", tc.query, ids, next, tc.ids, tc.next)
			}
		}
		for _, bad := range []string{"?limit=0", "?limit=1001", "?limit=ten", "?limit=-1"} {
			ts := newTestServer(t, nil)
			if w := ts.call("GET", "/v1/conversations"+bad, tokAdmin, ""); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "limit") {
				t.Errorf("%s: %d %s, want 400 naming limit", bad, w.Code, w.Body.String())
			}
		}
	})

	t.Run("empty list", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.call("GET", "/v1/conversations", tokAdmin, "")
		if got := strings.TrimSpace(w.Body.String()); got != `{"conversations":[]}` {
			t.Errorf("body = %s", got)
		}
	})

	t.Run("bad status", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.call("GET", "/v1/conversations?status=closed", tokAdmin, "")
		if w.Code != 400 || !strings.Contains(errorOf(t, w), "closed") {
			t.Errorf("got %d %q", w.Code, w.Body.String())
		}
	})
}

func TestRulesAndReload(t *testing.T) {
	loaded := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	good := RulesStatus{Version: "sha256:0f3a5c19e2b4", Files: 3, Rules: 12, LoadedAt: loaded, LastAttempt: loaded, OK: true}
	next := RulesStatus{Version: "sha256:aaaaaaaaaaaa", Files: 3, Rules: 13, LoadedAt: loaded.Add(time.Hour), LastAttempt: loaded.Add(time.Hour), OK: true}

	t.Run("read", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.b.rules = good
		w := ts.call("GET", "/v1/rules", tokSupervisor, "")
		var got RulesStatus
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil || !reflect.DeepEqual(got, good) {
			t.Errorf("got %d %s", w.Code, w.Body)
		}
	})

	t.Run("reload ok", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.b.rules = good
		ts.b.afterReload = next
		w := ts.call("POST", "/-/reload", tokAdmin, "")
		var got RulesStatus
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil || !reflect.DeepEqual(got, next) {
			t.Errorf("got %d %s, want 200 with %+v", w.Code, w.Body, next)
		}
		if ts.b.reloads != 1 {
			t.Errorf("%d reloads, want 1", ts.b.reloads)
		}
	})

	t.Run("reload rejected", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.b.rules = good
		ts.b.reloadErr = errors.New("2 problems in rules/escalate.yaml")
		ts.b.afterReload = RulesStatus{
			LastError: "2 problems in rules/escalate.yaml",
			Problems:  []string{"rules/escalate.yaml:4:9: unknown action escalte", "rules/escalate.yaml:9:3: expected bool"},
		}
		w := ts.call("POST", "/-/reload", tokAdmin, "")
		if w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("code = %d, want 422", w.Code)
		}
		var got ReloadFailure
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Error != "2 problems in rules/escalate.yaml" || got.OK || got.Version != good.Version ||
			!reflect.DeepEqual(got.Problems, ts.b.afterReload.Problems) {
			t.Errorf("got %s", w.Body)
		}
	})
}

func TestHealth(t *testing.T) {
	ts := newTestServer(t, nil)
	if w := ts.call("GET", "/healthz", "", ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "ok" {
		t.Errorf("healthz: %d %q", w.Code, w.Body)
	}
	if w := ts.call("GET", "/readyz", "", ""); w.Code != 200 {
		t.Errorf("readyz: %d %q, want 200", w.Code, w.Body)
	}
	ts.b.readyErr = errors.New("database unreachable")
	if w := ts.call("GET", "/readyz", "", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "database unreachable") {
		t.Errorf("readyz: %d %q, want 503 with the reason", w.Code, w.Body)
	}
	if w := ts.call("GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("healthz while not ready: %d, want 200", w.Code)
	}
}

func TestUnroutedAndPanics(t *testing.T) {
	ts := newTestServer(t, nil)
	w := ts.call("GET", "/nope", "", "")
	if w.Code != 404 {
		t.Errorf("GET /nope: %d", w.Code)
	}
	errorOf(t, w)
	w = ts.call("DELETE", "/v1/rules", tokAdmin, "")
	if w.Code != 405 || !strings.Contains(w.Header().Get("Allow"), "GET") {
		t.Errorf("DELETE /v1/rules: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	errorOf(t, w)

	ts.b.panicOn = "submit"
	w = ts.call("POST", "/v1/events", tokAdmin, `{"id":"m1","type":"message.received","at":"2026-11-21T10:02:00Z"}`)
	if w.Code != 500 {
		t.Errorf("panicking backend: %d, want 500", w.Code)
	}
	errorOf(t, w)
}

func TestDecodeEventsNamesEveryUnknownField(t *testing.T) {
	_, err := DecodeEvents([]byte(`{"b":1,"a":2,"contact":{"z":1},"sla":{"policy":"p","x":1},"id":"m"}`))
	want := `unknown fields "a", "b", "contact.z", "sla.x"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// newRequest is httptest.NewRequest with an optional body.
func newRequest(method, target, body string) *http.Request {
	if body == "" {
		return httptest.NewRequest(method, target, nil)
	}
	return httptest.NewRequest(method, target, strings.NewReader(body))
}

// TestDeadDeliveries: the list of what was given up, and its limit.
func TestDeadDeliveries(t *testing.T) {
	ts := newTestServer(t, nil)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	ts.b.dead = []DeadDelivery{{
		Delivery:     schemas.Delivery{Key: "m1/handoff/2", Kind: "reply", Result: schemas.DeliveryDead, Attempts: 1, Error: "whatsapp: 131026 message undeliverable", At: at},
		Conversation: "c1", Contact: "919800000001", Params: map[string]any{"text": "hello"},
	}}
	w := ts.call("GET", "/v1/outbound/dead?limit=5", tokSupervisor, "")
	if w.Code != 200 {
		t.Fatalf("code %d: %s", w.Code, w.Body.String())
	}
	want := `{"dead":[{"key":"m1/handoff/2","kind":"reply","result":"dead","attempts":1,"error":"whatsapp: 131026 message undeliverable","at":"2026-11-21T10:00:00Z","conversation":"c1","contact":"919800000001","params":{"text":"hello"}}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if ts.b.deadLimit != 5 {
		t.Errorf("limit asked %d, want 5", ts.b.deadLimit)
	}
	for _, bad := range []string{"0", "1001", "many"} {
		if w := ts.call("GET", "/v1/outbound/dead?limit="+bad, tokAdmin, ""); w.Code != 400 {
			t.Errorf("limit=%s: code %d, want 400", bad, w.Code)
		}
	}
	ts.b.dead = nil
	if w := ts.call("GET", "/v1/outbound/dead", tokAdmin, ""); strings.TrimSpace(w.Body.String()) != `{"dead":[]}` || ts.b.deadLimit != 100 {
		t.Errorf("none dead: %s (limit %d)", w.Body.String(), ts.b.deadLimit)
	}
}

// listed decodes a GET /v1/conversations answer: its ids and next.
func listed(t *testing.T, body []byte) (ids []string, next string) {
	t.Helper()
	var got ConversationList
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, c := range got.Conversations {
		ids = append(ids, c.ID)
	}
	return ids, got.Next
}
