package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/triage-dev/triage/calendar"
)

// SLA metrics, in the order policies list them.
const (
	MetricFirstResponse = "first_response"
	MetricNextResponse  = "next_response"
	MetricResolution    = "resolution"
)

// Metrics lists the SLA metrics.
var Metrics = []string{MetricFirstResponse, MetricNextResponse, MetricResolution}

// Calendar is a named business-hours calendar.
type Calendar struct {
	Name     string
	Timezone string
	Pos      Pos
	Cal      *calendar.Calendar
}

// SLAPolicy is a compiled SLA policy. A zero target means the policy does
// not measure that metric.
type SLAPolicy struct {
	Name       string
	Pos        Pos
	When       string // "" when it always applies
	Targets    map[string]time.Duration
	Calendar   *Calendar // nil: the clock runs 24x7
	WarnBefore time.Duration

	when *vm.Program
}

// Applies evaluates the policy's when against the environment.
func (p *SLAPolicy) Applies(env *Env) (bool, error) {
	if p.when == nil {
		return true, nil
	}
	v, err := env.run(p.when)
	if err != nil {
		return false, fmt.Errorf("sla policy %s: when: %w", p.Name, err)
	}
	b, _ := v.(bool)
	return b, nil
}

// Cal returns the policy's calendar arithmetic; nil means 24x7, which the
// calendar package accepts as such.
func (p *SLAPolicy) Cal() *calendar.Calendar {
	if p.Calendar == nil {
		return nil
	}
	return p.Calendar.Cal
}

// SLAPolicies returns the policies in load order: the first whose when is
// true applies.
func (s *Set) SLAPolicies() []*SLAPolicy { return s.policies }

// Calendar returns a business-hours calendar by name, or nil.
func (s *Set) Calendar(name string) *Calendar { return s.calendars[name] }

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (cp *compiler) calendar(rc rawCalendar) *Calendar {
	ok := rc.complete // what is missing was reported while reading
	var loc *time.Location
	if rc.timezone.s != "" {
		l, err := time.LoadLocation(rc.timezone.s)
		switch {
		case err != nil || strings.EqualFold(rc.timezone.s, "local"):
			cp.c.errorf(rc.timezone.pos, "unknown timezone %q: use an IANA name like Asia/Kolkata or Europe/Berlin", rc.timezone.s)
			ok = false
		default:
			loc = l
		}
	} else {
		ok = false
	}
	var weekly [7][]calendar.Interval
	for _, day := range rc.days {
		wd, err := calendar.ParseWeekday(day)
		if err != nil {
			cp.c.errorf(rc.dayPos[day], "unknown day %q (days are %s)", day, strings.Join(weekdays[1:], ", ")+", sun")
			ok = false
			continue
		}
		for _, iv := range rc.weekly[day] {
			in, err := calendar.ParseInterval(iv.s)
			if err != nil {
				cp.c.errorf(iv.pos, "%v", err)
				ok = false
				continue
			}
			weekly[wd] = append(weekly[wd], in)
		}
	}
	var holidays []calendar.Date
	for _, h := range rc.holidays {
		d, err := calendar.ParseDate(h.s)
		if err != nil {
			cp.c.errorf(h.pos, "%v", err)
			ok = false
			continue
		}
		holidays = append(holidays, d)
	}
	if !ok {
		return nil
	}
	cal, err := calendar.New(loc, weekly, holidays)
	if err != nil {
		// Point at the day the problem names, when it names one.
		p := rc.pos
		for _, day := range rc.days {
			if strings.HasPrefix(err.Error(), day+":") {
				p = rc.dayPos[day]
			}
		}
		cp.c.errorf(p, "calendar %q: %v", rc.name, err)
		return nil
	}
	return &Calendar{Name: rc.name, Timezone: rc.timezone.s, Pos: rc.pos, Cal: cal}
}

func parsePositive(v rawValue, what string) (time.Duration, error) {
	d, err := time.ParseDuration(v.s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration: write it like 90s, 5m, 4h or 1h30m", what, v.s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s must be longer than zero, not %q", what, v.s)
	}
	return d, nil
}

func (cp *compiler) policy(rp rawPolicy, known map[string]bool) *SLAPolicy {
	pol := &SLAPolicy{Name: rp.name, Pos: rp.pos, Targets: map[string]time.Duration{}}
	ok := true
	for _, m := range Metrics {
		v, given := rp.durations[m]
		if !given {
			continue
		}
		d, err := parsePositive(v, m)
		if err != nil {
			cp.c.errorf(v.pos, "%v", err)
			ok = false
			continue
		}
		pol.Targets[m] = d
	}
	if rp.warn.s != "" {
		d, err := parsePositive(rp.warn, "warn_before")
		if err != nil {
			cp.c.errorf(rp.warn.pos, "%v", err)
			ok = false
		} else {
			// A warning is planned for each target longer than warn_before;
			// one that fits none of them is surely a mistake.
			fits := false
			for _, m := range Metrics {
				if t := pol.Targets[m]; t > d {
					fits = true
				}
			}
			if !fits && len(pol.Targets) > 0 {
				cp.c.errorf(rp.warn.pos, "warn_before %s is not shorter than any target of this policy: no warning could ever come before its deadline", rp.warn.s)
				ok = false
			}
			pol.WarnBefore = d
		}
	}
	if rp.calendar.pos.Line != 0 && strings.TrimSpace(rp.calendar.s) == "" {
		cp.c.errorf(rp.calendar.pos, "business_hours must name a calendar; leave it out for a clock that runs 24x7")
		ok = false
	}
	if name := rp.calendar.s; name != "" {
		c := cp.set.calendars[name]
		switch {
		case c != nil:
			pol.Calendar = c
			cp.used["calendar:"+name] = true
		case known[name]:
			ok = false // the calendar has errors of its own
		default:
			msg := fmt.Sprintf("unknown business_hours calendar %q", name)
			var names []string
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			if s := suggest(name, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else if len(names) > 0 {
				msg += fmt.Sprintf(" (defined: %s)", strings.Join(names, ", "))
			}
			cp.c.errorf(rp.calendar.pos, "%s", msg)
			ok = false
		}
	}
	if rp.when != nil && !(rp.when.Tag == "!!bool" && strings.EqualFold(rp.when.Value, "true")) {
		pol.When = rp.when.Value
		c, good := cp.compile(pol.When, exprAt{src: rp.src, node: rp.when}, true)
		if good {
			pol.when = c.prog
		}
		ok = ok && good
	}
	if !ok {
		return nil
	}
	return pol
}

// errCalendarName is the error of in_business_hours with a name that is
// not a literal.
var errCalendarName = errors.New("in_business_hours takes the name of a business_hours calendar in quotes, like in_business_hours(\"office\")")

// slaWarnings reports calendars nothing uses and policies that can never
// apply because an earlier one has no condition.
func (cp *compiler) slaWarnings() {
	s := cp.set
	names := make([]string, 0, len(s.calendars))
	for n := range s.calendars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !cp.used["calendar:"+n] {
			cp.c.warnf(s.calendars[n].Pos, "business_hours calendar %q is never used (no SLA policy or in_business_hours names it)", n)
		}
	}
	var catchAll *SLAPolicy
	for _, p := range s.policies {
		if catchAll != nil {
			cp.c.warnf(p.Pos, "SLA policy %q can never apply: policy %q (%s) has no condition and comes first", p.Name, catchAll.Name, catchAll.Pos)
			continue
		}
		if p.when == nil {
			catchAll = p
		}
	}
}
