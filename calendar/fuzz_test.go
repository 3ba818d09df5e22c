package calendar

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"09:00-13:00", "00:00-24:00", "18:00-09:00", "24:00-24:00", "9:00-18:00", "23:59-24:00", "12:60-13:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		iv, err := ParseInterval(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if iv.Start < 0 || iv.Start >= iv.End || iv.End > minutesPerDay {
			t.Fatalf("ParseInterval(%q) = %v: not a valid interval", s, iv)
		}
		// Only the canonical spelling is accepted, so it round-trips.
		if got := formatInterval(iv); got != s {
			t.Fatalf("ParseInterval(%q) = %v, which formats as %q", s, iv, got)
		}
		if _, err := New(time.UTC, [7][]Interval{time.Monday: {iv}}, nil); err != nil {
			t.Fatalf("New rejects parsed interval %q: %v", s, err)
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-12-25", "2024-02-29", "2026-02-29", "2026-02-30", "0000-01-01", "9999-12-31", "2026-13-01", "2026-1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			return
		}
		if got := formatDate(d); got != s {
			t.Fatalf("ParseDate(%q) = %v, which formats as %q", s, d, got)
		}
		// A real date survives the time package's normalisation unchanged.
		y, m, day := time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Date()
		if (Date{y, m, day}) != d {
			t.Fatalf("ParseDate(%q) = %v, not a real date (normalises to %d-%d-%d)", s, d, y, m, day)
		}
	})
}

// fuzzZones includes zones with unusual transitions besides the three the
// package is tested on: Lord Howe moves by 30 minutes, Santiago and Sao
// Paulo changed at midnight, and Apia skipped 2011-12-30 entirely.
var fuzzZones = []string{
	"Asia/Kolkata", "America/New_York", "Europe/Berlin", "UTC",
	"Australia/Lord_Howe", "America/Santiago", "America/Sao_Paulo", "Pacific/Apia",
}

// FuzzNew builds calendars from fuzzed text. week holds up to seven
// ";"-separated days (sun first) of ","-separated intervals, either
// "HH:MM-HH:MM" or raw "start~end" minutes so New's own validation is
// reached; holidays is ","-separated "YYYY-MM-DD" or raw "y/m/d". New must
// never panic, and Add, Between and NextOpen must terminate and agree.
func FuzzNew(f *testing.F) {
	f.Add(uint8(0), "sun;09:00-13:00,14:00-18:00;09:00-18:00", "2026-12-25", int64(1772800000), int64(30*time.Minute))
	f.Add(uint8(1), "01:00-04:00", "", int64(1772942400), int64(3*time.Hour))
	f.Add(uint8(2), "02:00-03:00;;;;;;00:00-24:00", "2026-10-31", int64(1792886400), int64(5*time.Hour))
	f.Add(uint8(3), ";09:00-13:00,12:00-18:00", "", int64(0), int64(time.Hour))
	f.Add(uint8(4), ";-5~30;0~1441", "2026/2/30,2026/0/1", int64(-1), int64(-1))
	f.Add(uint8(7), ";;;;;00:00-24:00", "2011-12-30", int64(1325160000), int64(48*time.Hour))
	f.Add(uint8(5), "00:00-00:30", "", int64(1775000000), int64(14*24*time.Hour))
	f.Fuzz(func(t *testing.T, zone uint8, week, holidays string, sec, dur int64) {
		loc, err := time.LoadLocation(fuzzZones[int(zone)%len(fuzzZones)])
		if err != nil {
			t.Fatal(err)
		}
		var weekly [7][]Interval
		for wd, day := range strings.Split(week, ";") {
			if wd >= 7 {
				break
			}
			for tok := range strings.SplitSeq(day, ",") {
				if iv, err := ParseInterval(tok); err == nil {
					weekly[wd] = append(weekly[wd], iv)
				} else if a, b, ok := strings.Cut(tok, "~"); ok {
					s, err1 := strconv.Atoi(a)
					e, err2 := strconv.Atoi(b)
					if err1 == nil && err2 == nil {
						weekly[wd] = append(weekly[wd], Interval{s, e})
					}
				}
			}
		}
		var hs []Date
		for tok := range strings.SplitSeq(holidays, ",") {
			if d, err := ParseDate(tok); err == nil {
				hs = append(hs, d)
			} else if p := strings.Split(tok, "/"); len(p) == 3 {
				y, _ := strconv.Atoi(p[0])
				m, _ := strconv.Atoi(p[1])
				d, _ := strconv.Atoi(p[2])
				hs = append(hs, Date{y, time.Month(m), d})
			}
		}
		c, err := New(loc, weekly, hs)
		if err != nil {
			if c != nil {
				t.Fatalf("New returned a calendar and %v", err)
			}
			return
		}

		// Instants between 1900 and 2100, durations up to a week either
		// way, so one input stays cheap even for a calendar open one
		// minute a week.
		const lo, span = -2208988800, 6311433600
		tm := time.Unix(lo+mod(sec, span), mod(sec, 1e9)).In(loc)
		d := time.Duration(mod(dur, int64(14*24*time.Hour))) - 7*24*time.Hour

		next, ok := c.NextOpen(tm)
		if ok && (!c.Open(next) || c.Between(tm, next) != 0) {
			t.Fatalf("NextOpen(%v) = %v, not the first open instant", tm, next)
		}
		if open := c.Open(tm); (ok && open != next.Equal(tm)) || (!ok && open) {
			t.Fatalf("Open(%v) = %v, but NextOpen = %v, %v", tm, open, next, ok)
		}
		end, ok := c.Add(tm, d)
		if !ok {
			return
		}
		if d <= 0 {
			if end != tm {
				t.Fatalf("Add(%v, %v) = %v, want t", tm, d, end)
			}
			return
		}
		if got := c.Between(tm, end); got != d {
			t.Fatalf("Between(t, Add(t, %v)) = %v; t %v, end %v", d, got, tm, end)
		}
		// The last nanosecond counted must be open, and the result the
		// earliest instant with d elapsed.
		if last := end.Add(-time.Nanosecond); !c.Open(last) || c.Between(tm, last) != d-time.Nanosecond {
			t.Fatalf("Add(%v, %v) = %v: Open(1ns before) = %v, Between to it = %v",
				tm, d, end, c.Open(last), c.Between(tm, last))
		}
	})
}

// mod is a non-negative remainder, so any fuzzed int64 maps into range.
func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}
