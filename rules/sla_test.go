package rules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/rules"
)

// slaBase is a valid calendar that cases add to.
const slaBase = `version: 1
business_hours:
  office:
    timezone: Asia/Kolkata
    weekly:
      mon: ["09:00-13:00", "14:00-18:00"]
`

func TestSLALoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown timezone", `version: 1
business_hours:
  office:
    timezone: Asia/Kolkatta
    weekly: {mon: ["09:00-18:00"]}
`, []string{`rules/a.yaml:4:15: unknown timezone "Asia/Kolkatta": use an IANA name like Asia/Kolkata or Europe/Berlin`}},
		{"a night shift in one interval", `version: 1
business_hours:
  office:
    timezone: UTC
    weekly: {mon: ["18:00-09:00"]}
`, []string{`rules/a.yaml:5:20: 18:00-09:00: the end is not after the start; a night shift is two intervals, one on each day`}},
		{"overlapping intervals", `version: 1
business_hours:
  office:
    timezone: UTC
    weekly:
      tue: ["09:00-13:00", "12:00-18:00"]
`, []string{`rules/a.yaml:6:7: calendar "office": tue: 09:00-13:00 overlaps 12:00-18:00`}},
		{"unknown day", `version: 1
business_hours:
  office:
    timezone: UTC
    weekly:
      monday: ["09:00-13:00"]
`, []string{`rules/a.yaml:6:7: unknown day "monday" (days are mon, tue, wed, thu, fri, sat, sun)`}},
		{"malformed holiday", `version: 1
business_hours:
  office:
    timezone: UTC
    weekly: {mon: ["09:00-18:00"]}
    holidays: ["2026-02-30", "25/12/2026"]
`, []string{
			`rules/a.yaml:6:16: `,
			`rules/a.yaml:6:30: `,
		}},
		{"a policy naming an unknown calendar", slaBase + `sla:
  - name: std
    first_response: 5m
    business_hours: ofice
`, []string{`rules/a.yaml:10:21: unknown business_hours calendar "ofice" (did you mean office?)`}},
		{"non-positive and malformed durations", slaBase + `sla:
  - name: std
    first_response: 0s
    next_response: -5m
    resolution: 5 minutes
    business_hours: office
`, []string{
			`rules/a.yaml:9:21: first_response must be longer than zero, not "0s"`,
			`rules/a.yaml:10:20: next_response must be longer than zero, not "-5m"`,
			`rules/a.yaml:11:17: resolution "5 minutes" is not a duration: write it like 90s, 5m, 4h or 1h30m`,
		}},
		{"warn_before not shorter than any target", slaBase + `sla:
  - name: std
    first_response: 5m
    warn_before: 5m
    business_hours: office
`, []string{`rules/a.yaml:10:18: warn_before 5m is not shorter than any target of this policy: no warning could ever come before its deadline`}},
		{"an empty calendar name", slaBase + `sla:
  - name: std
    first_response: 5m
    business_hours: ""
`, []string{`rules/a.yaml:10:21: business_hours must name a calendar; leave it out for a clock that runs 24x7`}},
		{"a policy measuring nothing", slaBase + `sla:
  - name: std
    business_hours: office
`, []string{`rules/a.yaml:8:5: SLA policy "std" measures nothing: give first_response, next_response or resolution`}},
		{"unknown policy key and bad when", slaBase + `sla:
  - name: std
    first_respons: 5m
    when: conversation.priorty == "urgent"
    resolution: 1h
    business_hours: office
`, []string{
			`rules/a.yaml:9:5: unknown key "first_respons" in an SLA policy (known: name, when, first_response, next_response, resolution, business_hours, warn_before)`,
			`rules/a.yaml:10:24: conversation has no field priorty (did you mean priority?)`,
		}},
		{"duplicate calendar and policy names", slaBase + `sla:
  - {name: std, resolution: 1h, business_hours: office}
  - {name: std, resolution: 2h, business_hours: office}
`, []string{
			`rules/a.yaml:8:12: SLA policy "std" defined twice (also at rules/a.yaml:9:12)`,
			`rules/a.yaml:9:12: SLA policy "std" defined twice (also at rules/a.yaml:8:12)`,
		}},
		{"in_business_hours needs a literal name", slaBase + `sla:
  - {name: std, resolution: 1h, business_hours: office}
rules:
  - name: r
    on: [message.received]
    when: in_business_hours(event.text)
    actions: [ask_bot]
`, []string{`rules/a.yaml:12:11: in_business_hours takes the name of a business_hours calendar in quotes, like in_business_hours("office")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Compile(one(tt.yaml), rules.Options{Dir: "rules"})
			es, ok := rules.AsErrors(err)
			if !ok {
				t.Fatalf("want errors, got %v", err)
			}
			var got []string
			for _, e := range es {
				if e.Severity == rules.SeverityError {
					got = append(got, e.Error())
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSLAWarnings(t *testing.T) {
	set, err := rules.Compile(one(`version: 1
business_hours:
  office: {timezone: UTC, weekly: {mon: ["09:00-18:00"]}}
  unused: {timezone: UTC, weekly: {tue: ["09:00-18:00"]}}
sla:
  - {name: all, resolution: 1h, business_hours: office}
  - {name: urgent, when: 'conversation.priority == "urgent"', resolution: 30m}
`), rules.Options{Dir: "rules"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range set.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		`rules/a.yaml:4:3: warning: business_hours calendar "unused" is never used (no SLA policy or in_business_hours names it)`,
		`rules/a.yaml:7:5: warning: SLA policy "urgent" can never apply: policy "all" (rules/a.yaml:6:5) has no condition and comes first`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSLAPolicies(t *testing.T) {
	set := mustLoad(t, `version: 1
business_hours:
  office:
    timezone: Asia/Kolkata
    weekly: {mon: ["09:00-18:00"]}
    holidays: ["2026-01-26"]
sla:
  - name: urgent
    when: conversation.priority == "urgent"
    first_response: 2m
    warn_before: 1m
  - name: standard
    first_response: 5m
    next_response: 15m
    resolution: 24h
    business_hours: office
rules:
  - name: office-open
    on: [message.received]
    when: in_business_hours("office")
    actions: [ask_bot]
`)
	pols := set.SLAPolicies()
	if len(pols) != 2 || pols[0].Name != "urgent" || pols[1].Name != "standard" {
		t.Fatalf("policies in load order: %v", pols)
	}
	if pols[0].Targets["first_response"] != 2*time.Minute || pols[0].WarnBefore != time.Minute || pols[0].Calendar != nil {
		t.Errorf("urgent: %+v", pols[0])
	}
	if pols[1].Calendar == nil || pols[1].Calendar.Name != "office" || pols[1].Targets["resolution"] != 24*time.Hour {
		t.Errorf("standard: %+v", pols[1])
	}
	r := set.Rule("office-open")
	for _, tt := range []struct {
		at   string
		want bool
	}{
		{"2026-01-05T04:00:00Z", true},  // Monday 09:30 in Kolkata
		{"2026-01-05T03:00:00Z", false}, // 08:30
		{"2026-01-26T04:00:00Z", false}, // Republic Day
		{"2026-01-06T04:00:00Z", false}, // a Tuesday: closed in this calendar
	} {
		at, _ := time.Parse(time.RFC3339, tt.at)
		s := state{}
		s.ev.Type, s.ev.At = "message.received", at
		env := set.NewEnv()
		s.bind(env)
		if got, err := r.Match(env); err != nil || got != tt.want {
			t.Errorf("in_business_hours at %s = %v, %v; want %v", tt.at, got, err, tt.want)
		}
	}
}
