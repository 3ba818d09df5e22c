package calendar

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the machine's zoneinfo
)

// Zones and dates used throughout (2026):
//
//	Asia/Kolkata      +05:30, no DST.
//	America/New_York  Sun 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z);
//	                  Sun 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
//	Europe/Berlin     Sun 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z);
//	                  Sun 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
//
// Fridays: 2026-03-06, 03-27, 10-23, 10-30, 12-25 (a holiday in the
// office calendars). Thanksgiving 2026-11-26 is a Thursday.

func load(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// mk builds a calendar from a compact spec such as
// "mon,tue=09:00-13:00,14:00-18:00; sun=01:00-04:00", going through the
// parsers the configuration loader will use.
func mk(t testing.TB, loc *time.Location, spec string, holidays ...string) *Calendar {
	t.Helper()
	var weekly [7][]Interval
	for part := range strings.SplitSeq(spec, ";") {
		days, ivs, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			t.Fatalf("bad spec %q", part)
		}
		for name := range strings.SplitSeq(days, ",") {
			wd, err := ParseWeekday(name)
			if err != nil {
				t.Fatal(err)
			}
			for s := range strings.SplitSeq(ivs, ",") {
				weekly[wd] = append(weekly[wd], mustInterval(t, s))
			}
		}
	}
	var hs []Date
	for _, h := range holidays {
		d, err := ParseDate(h)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, d)
	}
	c, err := New(loc, weekly, hs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// at reads an instant: RFC 3339 with an explicit offset, which is how the
// tests name the two passes of a doubled hour, or an unambiguous local
// time "2006-01-02 15:04[:05[.999]]" in loc.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	if strings.Contains(s, "T") {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05.999999999"} {
		if tm, err := time.ParseInLocation(layout, s, loc); err == nil {
			return tm
		}
	}
	t.Fatalf("bad time %q", s)
	return time.Time{}
}

const weekdays = "mon,tue,wed,thu,fri"
const everyDay = "mon,tue,wed,thu,fri,sat,sun"

type fixtures struct {
	kol, ny, ber *time.Location

	kOffice, kLunch, kNight          *Calendar
	nOffice, nEarly, nGap, nGapStart *Calendar
	nGapEnd, nFold, nFoldEnd         *Calendar
	bOffice, bEarly, bFold           *Calendar
}

func newFixtures(t testing.TB) *fixtures {
	f := &fixtures{kol: load(t, "Asia/Kolkata"), ny: load(t, "America/New_York"), ber: load(t, "Europe/Berlin")}
	f.kOffice = mk(t, f.kol, weekdays+"=09:00-18:00", "2026-12-25")
	f.kLunch = mk(t, f.kol, weekdays+"=14:00-18:00,09:00-13:00", "2026-12-25")
	f.kNight = mk(t, f.kol, "fri=20:00-24:00; sat=00:00-02:00")

	f.nOffice = mk(t, f.ny, weekdays+"=09:00-18:00", "2026-11-26")
	f.nEarly = mk(t, f.ny, "sun=01:00-04:00")    // spans the gap and the fold
	f.nGap = mk(t, f.ny, "sun=02:00-03:00")      // exactly the spring gap
	f.nGapStart = mk(t, f.ny, "sun=02:30-05:00") // opens inside the gap
	f.nGapEnd = mk(t, f.ny, "sun=00:00-02:30")   // closes inside the gap
	f.nFold = mk(t, f.ny, "sun=01:15-01:45")     // inside the doubled hour
	f.nFoldEnd = mk(t, f.ny, "sun=00:00-01:30")  // closes inside the doubled hour

	f.bOffice = mk(t, f.ber, weekdays+"=08:00-12:00,13:00-17:00")
	f.bEarly = mk(t, f.ber, "sun=01:00-03:00")
	f.bFold = mk(t, f.ber, "sun=02:00-03:00") // Berlin's doubled hour
	return f
}

func TestAdd(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name string
		c    *Calendar
		loc  *time.Location
		from string
		d    time.Duration
		want string
	}{
		// Asia/Kolkata: no DST.
		{"friday evening to monday", f.kOffice, f.kol, "2026-03-06 17:45", 30 * time.Minute, "2026-03-09 09:15"},
		{"ends exactly at closing", f.kOffice, f.kol, "2026-03-06 17:45", 15 * time.Minute, "2026-03-06 18:00"},
		{"start at opening", f.kOffice, f.kol, "2026-03-09 09:00", 9 * time.Hour, "2026-03-09 18:00"},
		{"start at closing", f.kOffice, f.kol, "2026-03-09 18:00", time.Minute, "2026-03-10 09:01"},
		{"start before opening", f.kOffice, f.kol, "2026-03-09 06:00", time.Hour, "2026-03-09 10:00"},
		{"start on a weekend", f.kOffice, f.kol, "2026-03-07 12:00", time.Hour, "2026-03-09 10:00"},
		{"two weeks", f.kOffice, f.kol, "2026-03-02 09:00", 90 * time.Hour, "2026-03-13 18:00"},
		{"two weeks and a minute", f.kOffice, f.kol, "2026-03-02 09:00", 90*time.Hour + time.Minute, "2026-03-16 09:01"},
		{"lunch break", f.kLunch, f.kol, "2026-03-09 12:30", time.Hour, "2026-03-09 14:30"},
		{"up to lunch", f.kLunch, f.kol, "2026-03-09 12:30", 30 * time.Minute, "2026-03-09 13:00"},
		{"start at lunch", f.kLunch, f.kol, "2026-03-09 13:30", 10 * time.Minute, "2026-03-09 14:10"},
		{"lunch, friday to monday", f.kLunch, f.kol, "2026-03-06 16:00", 4 * time.Hour, "2026-03-09 11:00"},
		{"holiday in between", f.kOffice, f.kol, "2026-12-24 17:00", 2 * time.Hour, "2026-12-28 10:00"},
		{"start on a holiday", f.kOffice, f.kol, "2026-12-25 10:00", time.Hour, "2026-12-28 10:00"},
		{"across a 24:00 end", f.kNight, f.kol, "2026-03-06 23:00", 2 * time.Hour, "2026-03-07 01:00"},
		{"up to a 24:00 end", f.kNight, f.kol, "2026-03-06 23:00", time.Hour, "2026-03-07 00:00"},
		{"zero while closed", f.kOffice, f.kol, "2026-03-07 12:00", 0, "2026-03-07 12:00"},
		{"negative", f.kOffice, f.kol, "2026-03-07 12:00", -time.Hour, "2026-03-07 12:00"},
		{"fractions of a second", f.kOffice, f.kol, "2026-03-06 17:59:59.25", time.Second, "2026-03-09 09:00:00.25"},
		{"a nanosecond before closing", f.kOffice, f.kol, "2026-03-06 17:59:59.999999999", time.Nanosecond, "2026-03-06 18:00"},

		// America/New_York.
		{"friday to monday over spring forward", f.nOffice, f.ny, "2026-03-06 17:00", 2 * time.Hour, "2026-03-09T10:00:00-04:00"},
		{"friday to monday over fall back", f.nOffice, f.ny, "2026-10-30 17:00", 2 * time.Hour, "2026-11-02T10:00:00-05:00"},
		{"thanksgiving", f.nOffice, f.ny, "2026-11-25 17:00", 2 * time.Hour, "2026-11-27 10:00"},
		{"interval over the gap lasts 2h", f.nEarly, f.ny, "2026-03-08T01:00:00-05:00", 2 * time.Hour, "2026-03-08T04:00:00-04:00"},
		{"into the gap", f.nEarly, f.ny, "2026-03-08T01:00:00-05:00", time.Hour, "2026-03-08T03:00:00-04:00"},
		{"past the short interval", f.nEarly, f.ny, "2026-03-08T01:00:00-05:00", 150 * time.Minute, "2026-03-15T01:30:00-04:00"},
		{"interval over the fold lasts 4h", f.nEarly, f.ny, "2026-11-01T01:00:00-04:00", 4 * time.Hour, "2026-11-01T04:00:00-05:00"},
		{"to the second 01:00", f.nEarly, f.ny, "2026-11-01T01:00:00-04:00", time.Hour, "2026-11-01T01:00:00-05:00"},
		{"from the second pass", f.nEarly, f.ny, "2026-11-01T01:30:00-05:00", time.Hour, "2026-11-01T02:30:00-05:00"},
		{"interval inside the gap never opens", f.nGap, f.ny, "2026-03-08T00:00:00-05:00", 30 * time.Minute, "2026-03-15T02:30:00-04:00"},
		{"interval opening in the gap", f.nGapStart, f.ny, "2026-03-08T00:00:00-05:00", time.Hour, "2026-03-08T04:00:00-04:00"},
		{"interval closing in the gap", f.nGapEnd, f.ny, "2026-03-08T00:00:00-05:00", 2 * time.Hour, "2026-03-08T03:00:00-04:00"},
		{"past an interval closing in the gap", f.nGapEnd, f.ny, "2026-03-08T00:00:00-05:00", 121 * time.Minute, "2026-03-15T00:01:00-04:00"},
		{"interval in the fold, first pass", f.nFold, f.ny, "2026-11-01T00:00:00-04:00", 30 * time.Minute, "2026-11-01T01:45:00-04:00"},
		{"interval in the fold, both passes", f.nFold, f.ny, "2026-11-01T00:00:00-04:00", 45 * time.Minute, "2026-11-01T01:30:00-05:00"},
		{"interval closing in the fold", f.nFoldEnd, f.ny, "2026-11-01T00:00:00-04:00", 105 * time.Minute, "2026-11-01T01:15:00-05:00"},
		{"interval closing in the fold, all of it", f.nFoldEnd, f.ny, "2026-11-01T00:00:00-04:00", 2 * time.Hour, "2026-11-01T01:30:00-05:00"},

		// Europe/Berlin.
		{"berlin friday to monday over spring forward", f.bOffice, f.ber, "2026-03-27 16:00", 2 * time.Hour, "2026-03-30 09:00"},
		{"berlin lunch and fall back", f.bOffice, f.ber, "2026-10-23 16:30", 4 * time.Hour, "2026-10-26 11:30"},
		{"berlin 01:00-03:00 on spring day lasts 1h", f.bEarly, f.ber, "2026-03-29T01:00:00+01:00", time.Hour, "2026-03-29T03:00:00+02:00"},
		{"berlin past the short day", f.bEarly, f.ber, "2026-03-29T01:00:00+01:00", 61 * time.Minute, "2026-04-05T01:01:00+02:00"},
		{"berlin 01:00-03:00 on fall day lasts 3h", f.bEarly, f.ber, "2026-10-25T01:00:00+02:00", 3 * time.Hour, "2026-10-25T03:00:00+01:00"},
		{"berlin doubled hour", f.bFold, f.ber, "2026-10-25T00:00:00+02:00", 90 * time.Minute, "2026-10-25T02:30:00+01:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, want := at(t, tt.loc, tt.from), at(t, tt.loc, tt.want)
			got, ok := tt.c.Add(from, tt.d)
			if !ok || !got.Equal(want) {
				t.Fatalf("Add(%v, %v) = %v, %v; want %v", from, tt.d, got, ok, want)
			}
			if got.Location() != from.Location() {
				t.Errorf("result in %v, want the argument's %v", got.Location(), from.Location())
			}
			if tt.d > 0 {
				if b := tt.c.Between(from, got); b != tt.d {
					t.Errorf("Between(from, Add(from, d)) = %v, want %v", b, tt.d)
				}
			}
		})
	}
}

func TestBetween(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name string
		c    *Calendar
		loc  *time.Location
		a, b string
		want time.Duration
	}{
		{"friday to monday", f.kOffice, f.kol, "2026-03-06 17:00", "2026-03-09 10:00", 2 * time.Hour},
		{"lunch day", f.kLunch, f.kol, "2026-03-09 08:00", "2026-03-09 20:00", 8 * time.Hour},
		{"holiday week", f.kOffice, f.kol, "2026-12-21 00:00", "2026-12-28 00:00", 36 * time.Hour},
		{"two weeks", f.kLunch, f.kol, "2026-03-02 00:00", "2026-03-16 00:00", 80 * time.Hour},
		{"reversed", f.kOffice, f.kol, "2026-03-09 12:00", "2026-03-09 10:00", 0},
		{"empty", f.kOffice, f.kol, "2026-03-09 12:00", "2026-03-09 12:00", 0},
		{"fractions", f.kOffice, f.kol, "2026-03-09 10:00:00.5", "2026-03-09 10:00:01.25", 750 * time.Millisecond},
		{"fractions over the night", f.kOffice, f.kol, "2026-03-09 17:59:59.9", "2026-03-10 09:00:00.1", 200 * time.Millisecond},
		{"from closing to opening", f.kOffice, f.kol, "2026-03-09 18:00", "2026-03-10 09:00", 0},
		{"across a 24:00 end", f.kNight, f.kol, "2026-03-06 20:00", "2026-03-07 12:00", 6 * time.Hour},
		{"new york over spring forward", f.nOffice, f.ny, "2026-03-06 12:00", "2026-03-09 12:00", 9 * time.Hour},
		{"new york thanksgiving week", f.nOffice, f.ny, "2026-11-23 00:00", "2026-11-30 00:00", 36 * time.Hour},
		{"01:00-04:00 on spring day", f.nEarly, f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 2 * time.Hour},
		{"01:00-04:00 on fall day", f.nEarly, f.ny, "2026-11-01 00:00", "2026-11-02 00:00", 4 * time.Hour},
		{"gap interval on spring day", f.nGap, f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 0},
		{"gap interval on fall day", f.nGap, f.ny, "2026-11-01 00:00", "2026-11-02 00:00", time.Hour},
		{"opening in the gap", f.nGapStart, f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 2 * time.Hour},
		{"closing in the gap", f.nGapEnd, f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 2 * time.Hour},
		{"fold interval on fall day", f.nFold, f.ny, "2026-11-01 00:00", "2026-11-02 00:00", time.Hour},
		{"fold interval on spring day", f.nFold, f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 30 * time.Minute},
		{"closing in the fold", f.nFoldEnd, f.ny, "2026-11-01 00:00", "2026-11-02 00:00", 2 * time.Hour},
		{"between the two passes", f.nFold, f.ny, "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", 30 * time.Minute},
		{"berlin 01:00-03:00 spring", f.bEarly, f.ber, "2026-03-29 00:00", "2026-03-30 00:00", time.Hour},
		{"berlin 01:00-03:00 fall", f.bEarly, f.ber, "2026-10-25 00:00", "2026-10-26 00:00", 3 * time.Hour},
		{"berlin doubled hour", f.bFold, f.ber, "2026-10-25 00:00", "2026-10-26 00:00", 2 * time.Hour},
		{"berlin 02:00-03:00 spring", f.bFold, f.ber, "2026-03-29 00:00", "2026-03-30 00:00", 0},
		{"berlin week over fall back", f.bOffice, f.ber, "2026-10-23 00:00", "2026-10-27 00:00", 16 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := at(t, tt.loc, tt.a), at(t, tt.loc, tt.b)
			if got := tt.c.Between(a, b); got != tt.want {
				t.Errorf("Between(%v, %v) = %v, want %v", a, b, got, tt.want)
			}
			// The location of the arguments must not matter.
			if got := tt.c.Between(a.UTC(), b.In(f.kol)); got != tt.want {
				t.Errorf("Between in other locations = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name string
		c    *Calendar
		loc  *time.Location
		at   string
		want bool
	}{
		{"opening instant", f.kOffice, f.kol, "2026-03-09 09:00", true},
		{"just before opening", f.kOffice, f.kol, "2026-03-09 08:59:59.999999999", false},
		{"just before closing", f.kOffice, f.kol, "2026-03-09 17:59:59.999999999", true},
		{"closing instant", f.kOffice, f.kol, "2026-03-09 18:00", false},
		{"saturday", f.kOffice, f.kol, "2026-03-07 12:00", false},
		{"holiday", f.kOffice, f.kol, "2026-12-25 12:00", false},
		{"lunch starts", f.kLunch, f.kol, "2026-03-09 13:00", false},
		{"before lunch", f.kLunch, f.kol, "2026-03-09 12:59", true},
		{"after lunch", f.kLunch, f.kol, "2026-03-09 14:00", true},
		{"before a 24:00 end", f.kNight, f.kol, "2026-03-06 23:59:59", true},
		{"midnight after a 24:00 end", f.kNight, f.kol, "2026-03-07 00:00", true},
		{"utc argument, open", f.kOffice, f.kol, "2026-03-09T03:30:00Z", true},
		{"utc argument, closed", f.kOffice, f.kol, "2026-03-09T03:29:59Z", false},
		{"before the gap", f.nEarly, f.ny, "2026-03-08T01:59:59-05:00", true},
		{"after the gap", f.nEarly, f.ny, "2026-03-08T03:00:00-04:00", true},
		{"end after the gap", f.nEarly, f.ny, "2026-03-08T04:00:00-04:00", false},
		{"gap interval at the transition", f.nGap, f.ny, "2026-03-08T03:00:00-04:00", false},
		{"gap interval on fall day", f.nGap, f.ny, "2026-11-01T02:30:00-05:00", true},
		{"opening in the gap, at the transition", f.nGapStart, f.ny, "2026-03-08T03:00:00-04:00", true},
		{"opening in the gap, before", f.nGapStart, f.ny, "2026-03-08T01:59:59-05:00", false},
		{"fold, first pass", f.nFold, f.ny, "2026-11-01T01:30:00-04:00", true},
		{"fold, second pass", f.nFold, f.ny, "2026-11-01T01:30:00-05:00", true},
		{"fold, between passes", f.nFold, f.ny, "2026-11-01T01:50:00-04:00", false},
		{"fold, second 01:00", f.nFold, f.ny, "2026-11-01T01:00:00-05:00", false},
		{"berlin doubled hour, first pass", f.bFold, f.ber, "2026-10-25T02:59:59+02:00", true},
		{"berlin doubled hour, second pass", f.bFold, f.ber, "2026-10-25T02:00:00+01:00", true},
		{"berlin after the doubled hour", f.bFold, f.ber, "2026-10-25T03:00:00+01:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := at(t, tt.loc, tt.at)
			if got := tt.c.Open(tm); got != tt.want {
				t.Errorf("Open(%v) = %v, want %v", tm, got, tt.want)
			}
		})
	}
}

func TestNextOpen(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name     string
		c        *Calendar
		loc      *time.Location
		from     string
		want     string
		sameTime bool // t itself must come back
	}{
		{"open", f.kOffice, f.kol, "2026-03-09 10:00:00.5", "2026-03-09 10:00:00.5", true},
		{"at opening", f.kOffice, f.kol, "2026-03-09 09:00", "2026-03-09 09:00", true},
		{"at closing on friday", f.kOffice, f.kol, "2026-03-06 18:00", "2026-03-09 09:00", false},
		{"fraction before opening", f.kOffice, f.kol, "2026-03-09 08:59:59.5", "2026-03-09 09:00", false},
		{"over a holiday", f.kOffice, f.kol, "2026-12-24 18:00", "2026-12-28 09:00", false},
		{"on a holiday", f.kOffice, f.kol, "2026-12-25 09:00", "2026-12-28 09:00", false},
		{"lunch", f.kLunch, f.kol, "2026-03-09 13:00", "2026-03-09 14:00", false},
		{"opening in the gap", f.nGapStart, f.ny, "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00", false},
		{"second pass of the fold", f.nFold, f.ny, "2026-11-01T01:50:00-04:00", "2026-11-01T01:15:00-05:00", false},
		{"second pass after a close in the fold", f.nFoldEnd, f.ny, "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", false},
		{"interval in the gap", f.nGap, f.ny, "2026-03-08T00:00:00-05:00", "2026-03-15T02:00:00-04:00", false},
		{"berlin after the spring interval", f.bEarly, f.ber, "2026-03-29T02:00:00+01:00", "2026-04-05T01:00:00+02:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, want := at(t, tt.loc, tt.from), at(t, tt.loc, tt.want)
			got, ok := tt.c.NextOpen(from)
			if !ok || !got.Equal(want) {
				t.Fatalf("NextOpen(%v) = %v, %v; want %v", from, got, ok, want)
			}
			if tt.sameTime && got != from {
				t.Errorf("NextOpen(%v) = %#v, want t itself", from, got)
			}
			if !tt.c.Open(got) {
				t.Errorf("Open(NextOpen(t)) = false")
			}
		})
	}
}

// TestAllDay checks that 00:00-24:00 every day is real time, DST days
// included: 23 and 25 hour days count as 23 and 25 hours.
func TestAllDay(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name  string
		loc   *time.Location
		a, b  string
		hours int
	}{
		{"kolkata day", f.kol, "2026-03-08 00:00", "2026-03-09 00:00", 24},
		{"kolkata year", f.kol, "2026-01-01 00:00", "2027-01-01 00:00", 365 * 24},
		{"new york spring day", f.ny, "2026-03-08 00:00", "2026-03-09 00:00", 23},
		{"new york fall day", f.ny, "2026-11-01 00:00", "2026-11-02 00:00", 25},
		{"new york ordinary day", f.ny, "2026-06-01 00:00", "2026-06-02 00:00", 24},
		{"new york year", f.ny, "2026-01-01 00:00", "2027-01-01 00:00", 365 * 24},
		{"berlin spring day", f.ber, "2026-03-29 00:00", "2026-03-30 00:00", 23},
		{"berlin fall day", f.ber, "2026-10-25 00:00", "2026-10-26 00:00", 25},
		{"berlin week over fall back", f.ber, "2026-10-21 13:17", "2026-10-28 13:17", 7*24 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mk(t, tt.loc, everyDay+"=00:00-24:00")
			a, b := at(t, tt.loc, tt.a), at(t, tt.loc, tt.b)
			want := time.Duration(tt.hours) * time.Hour
			if got := c.Between(a, b); got != want || b.Sub(a) != want {
				t.Fatalf("Between = %v, real %v, want %v", got, b.Sub(a), want)
			}
			for _, d := range []time.Duration{time.Nanosecond, 90 * time.Minute, 3 * time.Hour, want, 3*want + 7*time.Second} {
				got, ok := c.Add(a, d)
				if !ok || !got.Equal(a.Add(d)) {
					t.Errorf("Add(%v, %v) = %v, want %v", a, d, got, a.Add(d))
				}
				var nilCal *Calendar
				nilGot, _ := nilCal.Add(a, d)
				if !nilGot.Equal(got) {
					t.Errorf("24x7 calendar and nil calendar differ: %v vs %v", got, nilGot)
				}
			}
		})
	}
}

func TestNilCalendar(t *testing.T) {
	var c *Calendar
	a := time.Date(2026, 3, 8, 1, 30, 0, 0, time.UTC)
	b := a.Add(50 * time.Hour)
	if !c.Open(a) {
		t.Error("nil calendar closed")
	}
	if got, ok := c.Add(a, 50*time.Hour); !ok || !got.Equal(b) {
		t.Errorf("Add = %v, %v", got, ok)
	}
	if got, ok := c.Add(a, -time.Hour); !ok || !got.Equal(a.Add(-time.Hour)) {
		t.Errorf("Add negative = %v, %v; want t.Add(d)", got, ok)
	}
	if got := c.Between(a, b); got != 50*time.Hour {
		t.Errorf("Between = %v", got)
	}
	if got := c.Between(b, a); got != 0 {
		t.Errorf("Between reversed = %v, want 0", got)
	}
	if got, ok := c.NextOpen(a); !ok || got != a {
		t.Errorf("NextOpen = %v, %v", got, ok)
	}
}

// TestNoOpening checks the 5-year give-up and that it does not fire early:
// holidays on every open day for a while delay the answer but do not lose
// it, and Between still counts the hours after them.
func TestNoOpening(t *testing.T) {
	kol := load(t, "Asia/Kolkata")
	mondays := func(years int) []Date {
		var ds []Date
		for d := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC); d.Year() < 2026+years; d = d.AddDate(0, 0, 7) {
			ds = append(ds, Date{d.Year(), d.Month(), d.Day()})
		}
		return ds
	}
	weekly := [7][]Interval{time.Monday: {{9 * 60, 10 * 60}}}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, kol)

	never, err := New(kol, weekly, mondays(6))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := never.Add(from, time.Minute); ok || !got.IsZero() {
		t.Errorf("Add over 6 years of holidays = %v, %v; want zero, false", got, ok)
	}
	if got, ok := never.NextOpen(from); ok || !got.IsZero() {
		t.Errorf("NextOpen over 6 years of holidays = %v, %v; want zero, false", got, ok)
	}
	if got, ok := never.Add(from, 0); !ok || got != from {
		t.Errorf("Add(t, 0) = %v, %v; want t, true", got, ok)
	}
	end := time.Date(2032, 1, 6, 0, 0, 0, 0, kol) // after Monday 2032-01-05
	if got := never.Between(from, end); got != time.Hour {
		t.Errorf("Between over the holidays = %v, want 1h", got)
	}

	late, err := New(kol, weekly, mondays(4))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2030, 1, 7, 9, 1, 0, 0, kol) // first Monday of 2030
	if got, ok := late.Add(from, time.Minute); !ok || !got.Equal(want) {
		t.Errorf("Add over 4 years of holidays = %v, %v; want %v", got, ok, want)
	}
}

// TestLeapYearEnd covers golang/go#81583: beyond the last transition
// listed in the tz database, time.Time.ZoneBounds reports a period ending
// at the start of the last UTC day of a leap year, before the instant
// asked about. The walk must still advance (it used to loop forever) and
// count correctly, for northern and southern hemisphere zones.
func TestLeapYearEnd(t *testing.T) {
	tests := []struct {
		zone  string
		from  string // local
		d     time.Duration
		want  string // local
		span  string // Between(from, span) must be wantB
		wantB time.Duration
	}{
		{"America/New_York", "2040-12-30 12:00", 24 * time.Hour, "2041-01-01 18:00", "2041-01-02 00:00", 24 * time.Hour},
		{"America/New_York", "2040-12-31 18:30", time.Hour, "2041-01-01 10:00", "2041-01-01 09:30", 30 * time.Minute},
		{"Europe/Berlin", "2040-12-31 00:30", 9 * time.Hour, "2040-12-31 18:00", "2041-01-01 10:00", 10 * time.Hour},
		{"Australia/Lord_Howe", "2104-12-31 08:00", 20 * time.Hour, "2105-01-02 11:00", "2105-01-02 00:00", 18 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.from, func(t *testing.T) {
			loc := load(t, tt.zone)
			c := mk(t, loc, everyDay+"=09:00-18:00")
			from, want, span := at(t, loc, tt.from), at(t, loc, tt.want), at(t, loc, tt.span)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if got, ok := c.Add(from, tt.d); !ok || !got.Equal(want) {
					t.Errorf("Add(%v, %v) = %v, %v; want %v", from, tt.d, got, ok, want)
				}
				if got := c.Between(from, span); got != tt.wantB {
					t.Errorf("Between(%v, %v) = %v, want %v", from, span, got, tt.wantB)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Add or Between did not terminate")
			}
		})
	}
}

// TestConcurrent lets the race detector check that a Calendar is safe for
// concurrent use.
func TestConcurrent(t *testing.T) {
	f := newFixtures(t)
	from := at(t, f.ny, "2026-10-28 11:00")
	want, _ := f.nOffice.Add(from, 40*time.Hour)
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 200 {
				got, _ := f.nOffice.Add(from, 40*time.Hour)
				ok = ok && got.Equal(want) && f.nOffice.Between(from, got) == 40*time.Hour && !f.nOffice.Open(from.AddDate(0, 0, 4))
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("concurrent calls disagreed")
		}
	}
}
