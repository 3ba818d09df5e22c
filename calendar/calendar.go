// Package calendar does business-hours arithmetic for SLA deadlines: it
// answers "is the office open at t", "when has d of business time elapsed
// after t" and "how much business time lies between a and b".
//
// A Calendar is a weekly schedule of opening intervals plus a list of
// holidays, all read in one time.Location. The rules below are chosen so
// that the three questions always agree with each other: an instant is
// open exactly when Open reports it, Add and Between count exactly the
// instants Open reports, and NextOpen finds the first of them.
//
// # Wall clock in, real instants out
//
// Intervals and holidays are local wall-clock times in the calendar's
// location. An instant t is open when its local wall clock (t.In(loc))
// falls on a day that is not a holiday, inside one of that weekday's
// intervals: opening time included, closing time excluded. Results are
// real instants; the arithmetic is done on instants, never on wall-clock
// differences, so a result may be in any location and should be compared
// with time.Time.Equal. Results that had to be computed are returned in
// the location of the argument t, as t.Add would.
//
// # Daylight saving time
//
// Because openness is decided by the wall clock of each instant, DST
// follows without special cases:
//
//   - On a spring-forward day, local times inside the gap never happen,
//     so they contribute no business time. In a zone jumping from 02:00 to
//     03:00, 09:00-18:00 is still 9 hours, and 01:00-04:00 lasts 2 real
//     hours. When an interval starts or ends inside the gap, that wall
//     time is taken to be the first instant after the gap (the
//     transition itself); time.Date's unspecified choice is never used.
//   - On a fall-back day, a doubled local hour happens twice and counts
//     twice: in a zone going back from 02:00 to 01:00, 01:00-03:00 lasts
//     3 real hours, and 01:15-01:45 is open twice, for an hour in total.
//   - The same rule covers rarer zones: a local day that never happens
//     (Pacific/Apia skipped 2011-12-30) has no business time, and
//     transitions at midnight or by 30 minutes need nothing special.
//
// # Edge cases
//
//   - Holidays close whole local days, whatever the weekday.
//   - An interval may end at 24:00, the next local midnight; 23:00-24:00
//     on one day and 00:00-01:00 on the next form one stretch of open time.
//   - Add(t, d) with d <= 0 returns t unchanged. Add(t, d) with t outside
//     hours starts counting at the next opening. When d runs out exactly at
//     a closing, the result is that closing instant, not the next opening:
//     it is the earliest instant at which d has elapsed.
//   - Between(a, b) is 0 when b <= a.
//   - Add and NextOpen give up, returning the zero Time and false, when no
//     open instant exists within 5 years of the last one found (every open
//     day a holiday, for instance), so they always terminate.
//   - A nil *Calendar is open 24x7: Open is true, Add is t.Add(d) (so,
//     unlike a real calendar, a negative d goes back), Between is
//     b.Sub(a) (0 when b <= a, as for any calendar) and NextOpen is t.
//     Callers with no business_hours need no special case.
//
// # Cost
//
// Add and Between walk the schedule interval by interval and day by day,
// never minute by minute, and look up the zone's offset only once per
// offset period (normally twice a year), so adding two weeks of business
// time costs about fifteen days of work and allocates nothing.
package calendar

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// minutesPerDay is the largest Interval.End: 24:00.
const minutesPerDay = 24 * 60

const secondsPerDay = 24 * 60 * 60

// maxGap bounds the search for an opening, in seconds: five years with
// their leap days. Without it Add could run forever on a
// calendar whose every open day is a holiday.
const maxGap = (5*365 + 2) * secondsPerDay

// Interval is a daily opening interval in minutes after local midnight:
// Start < End, End <= 1440 (24:00).
type Interval struct{ Start, End int }

// Date is a civil date: a day in the calendar's location, not an instant.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// Calendar is a weekly schedule with holidays in one location. It is
// immutable and safe for concurrent use.
type Calendar struct {
	loc *time.Location
	// weekly is indexed by time.Weekday; each day's intervals are sorted,
	// non-overlapping and merged where they touch, so the walk emits them
	// in time order.
	weekly [7][]Interval
	// holidays holds days since 1970-01-01 (see daysFromCivil), the same
	// numbering the walk uses, so a lookup needs no date conversion.
	holidays map[int64]struct{}
}

var weekdayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseInterval reads "HH:MM-HH:MM", for example "09:00-13:00". 24:00 is
// allowed only as an end. A night shift such as "18:00-09:00" is an error:
// it belongs to two days and must be written as two intervals.
func ParseInterval(s string) (Interval, error) {
	if len(s) != len("HH:MM-HH:MM") || s[5] != '-' {
		return Interval{}, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	start, err := parseClock(s[:5])
	if err != nil {
		return Interval{}, fmt.Errorf("%q: %v", s, err)
	}
	if start == minutesPerDay {
		return Interval{}, fmt.Errorf("%q: 24:00 is allowed only as an end", s)
	}
	end, err := parseClock(s[6:])
	if err != nil {
		return Interval{}, fmt.Errorf("%q: %v", s, err)
	}
	if end <= start {
		return Interval{}, fmt.Errorf("%s: the end is not after the start; a night shift is two intervals, one on each day", s)
	}
	return Interval{start, end}, nil
}

// parseClock reads "HH:MM" into minutes after midnight, 00:00 to 24:00.
func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	h, okh := digits2(s[0], s[1])
	m, okm := digits2(s[3], s[4])
	if !okh || !okm {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q: out of range 00:00-24:00", s)
	}
	return h*60 + m, nil
}

// digits2 reads two ASCII digits. It accepts nothing else, not even other
// Unicode digits, so that only the canonical spelling parses.
func digits2(a, b byte) (int, bool) {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

// ParseDate reads "YYYY-MM-DD". Only real dates are accepted: 2026-02-30
// is an error rather than being normalised to March, because a holiday
// list with a typo should be rejected, not silently shifted.
func ParseDate(s string) (Date, error) {
	if len(s) != len("YYYY-MM-DD") || s[4] != '-' || s[7] != '-' {
		return Date{}, fmt.Errorf("%q: want YYYY-MM-DD", s)
	}
	y1, ok1 := digits2(s[0], s[1])
	y2, ok2 := digits2(s[2], s[3])
	m, ok3 := digits2(s[5], s[6])
	d, ok4 := digits2(s[8], s[9])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return Date{}, fmt.Errorf("%q: want YYYY-MM-DD", s)
	}
	date := Date{y1*100 + y2, time.Month(m), d}
	if err := date.check(); err != nil {
		return Date{}, fmt.Errorf("%q: %v", s, err)
	}
	return date, nil
}

// check reports whether d names a day that exists.
func (d Date) check() error {
	if d.Month < time.January || d.Month > time.December {
		return fmt.Errorf("month %d out of range 1-12", int(d.Month))
	}
	if n := daysIn(d.Year, d.Month); d.Day < 1 || d.Day > n {
		return fmt.Errorf("day %d out of range 1-%d for %s %d", d.Day, n, d.Month, d.Year)
	}
	return nil
}

// formatDate writes d as ParseDate reads it. It is not a String method
// so that the package's exported API stays exactly as specified.
func formatDate(d Date) string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// daysIn returns the length of a month in the proleptic Gregorian
// calendar, the one the time package uses.
func daysIn(year int, m time.Month) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// ParseWeekday reads a lowercase three-letter day name: mon tue wed thu
// fri sat sun. Nothing else is accepted, so configuration files stay
// uniform.
func ParseWeekday(s string) (time.Weekday, error) {
	for i, n := range weekdayNames {
		if s == n {
			return time.Weekday(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want one of mon tue wed thu fri sat sun", s)
}

// New validates a schedule and builds a Calendar. weekly is indexed by
// time.Weekday; each day's intervals may be given in any order. Intervals
// that touch (09:00-13:00 and 13:00-18:00) are merged; intervals that
// overlap are an error naming the day and both intervals, since an overlap
// is almost always a typo. A schedule with no interval on any weekday is
// an error too: it could never open. The inputs are copied.
func New(loc *time.Location, weekly [7][]Interval, holidays []Date) (*Calendar, error) {
	if loc == nil {
		return nil, errors.New("nil location")
	}
	c := &Calendar{loc: loc}
	open := false
	for wd := range weekly {
		day := slices.Clone(weekly[wd])
		for _, iv := range day {
			if iv.Start < 0 || iv.End > minutesPerDay || iv.Start >= iv.End {
				return nil, fmt.Errorf("%s: interval %d-%d minutes: want 0 <= start < end <= 1440",
					weekdayNames[wd], iv.Start, iv.End)
			}
		}
		slices.SortFunc(day, func(a, b Interval) int {
			if a.Start != b.Start {
				return a.Start - b.Start
			}
			return a.End - b.End
		})
		merged := day[:0]
		for _, iv := range day {
			if n := len(merged); n > 0 {
				last := &merged[n-1]
				if iv.Start < last.End {
					return nil, fmt.Errorf("%s: %s overlaps %s",
						weekdayNames[wd], formatInterval(*last), formatInterval(iv))
				}
				if iv.Start == last.End {
					last.End = iv.End
					continue
				}
			}
			merged = append(merged, iv)
		}
		if len(merged) > 0 {
			c.weekly[wd] = slices.Clip(merged)
			open = true
		}
	}
	if !open {
		return nil, errors.New("no opening hours on any day")
	}
	if len(holidays) > 0 {
		c.holidays = make(map[int64]struct{}, len(holidays))
		for _, d := range holidays {
			if err := d.check(); err != nil {
				return nil, fmt.Errorf("holiday %s: %v", formatDate(d), err)
			}
			c.holidays[daysFromCivil(d.Year, d.Month, d.Day)] = struct{}{}
		}
	}
	return c, nil
}

// formatInterval writes iv back as ParseInterval reads it, so error
// messages quote what the user wrote.
func formatInterval(iv Interval) string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", iv.Start/60, iv.Start%60, iv.End/60, iv.End%60)
}

// Open reports whether t is inside business hours: its local wall clock
// is in one of its weekday's intervals (start included, end excluded) and
// its local day is not a holiday.
func (c *Calendar) Open(t time.Time) bool {
	if c == nil {
		return true
	}
	// The same wall-clock arithmetic as the walk, so Open and Add agree
	// even on DST days.
	_, off := t.In(c.loc).Zone()
	wall := t.Unix() + int64(off)
	day := floorDiv(wall, secondsPerDay)
	if c.holiday(day) {
		return false
	}
	sec := wall - day*secondsPerDay
	for _, iv := range c.weekly[weekdayOf(day)] {
		if int64(iv.Start)*60 <= sec && sec < int64(iv.End)*60 {
			return true
		}
	}
	return false
}

// Add returns the instant at which d of business time has elapsed after
// t. If t is outside hours, counting starts at the next opening. When d
// runs out exactly at a closing, that closing instant is returned. d <= 0
// returns t unchanged. ok is false, with the zero Time, only if no opening
// is found within 5 years of the previous one.
func (c *Calendar) Add(t time.Time, d time.Duration) (time.Time, bool) {
	if c == nil {
		return t.Add(d), true
	}
	if d <= 0 {
		return t, true
	}
	ts, tn := t.Unix(), int64(t.Nanosecond())
	w := c.walk(ts, math.MaxInt64, true)
	left := d
	for {
		a, b, ok := w.next()
		if !ok {
			return time.Time{}, false
		}
		// Segments are whole seconds; only one starting at t's second
		// needs t's fraction taken off.
		avail := time.Duration(b-a) * time.Second
		if a == ts {
			avail -= time.Duration(tn)
		}
		if left <= avail {
			if a == ts {
				return t.Add(left), true
			}
			return time.Unix(a, 0).Add(left).In(t.Location()), true
		}
		left -= avail
	}
}

// Between returns the business time inside [a, b), or 0 if b <= a.
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if !a.Before(b) {
		return 0
	}
	if c == nil {
		return b.Sub(a)
	}
	as, an := a.Unix(), int64(a.Nanosecond())
	bs, bn := b.Unix(), int64(b.Nanosecond())
	until := bs
	if bn > 0 {
		until++
	}
	w := c.walk(as, until, false)
	var sum time.Duration
	for {
		s, e, ok := w.next()
		if !ok || s >= until {
			return sum
		}
		part := time.Duration(e-s) * time.Second
		if s == as {
			part -= time.Duration(an)
		}
		if e > bs {
			// The segment reaches b's second: keep only b's fraction of it.
			part -= time.Duration(e-bs)*time.Second - time.Duration(bn)
		}
		if sum > math.MaxInt64-part {
			return math.MaxInt64 // more than 292 years: saturate as Sub does
		}
		sum += part
	}
}

// NextOpen returns the first instant >= t that is inside business hours:
// t itself when Open(t). ok is false, with the zero Time, only if no
// opening is found within 5 years.
func (c *Calendar) NextOpen(t time.Time) (time.Time, bool) {
	if c == nil {
		return t, true
	}
	ts := t.Unix()
	w := c.walk(ts, math.MaxInt64, true)
	a, _, ok := w.next()
	switch {
	case !ok:
		return time.Time{}, false
	case a == ts:
		return t, true
	}
	return time.Unix(a, 0).In(t.Location()), true
}

// holiday reports whether a local day, counted from 1970-01-01, is closed.
func (c *Calendar) holiday(day int64) bool {
	if c.holidays == nil {
		return false
	}
	_, ok := c.holidays[day]
	return ok
}

// walker yields the open segments at or after an instant, in time order,
// as half-open ranges [a, b) of Unix seconds. Interval boundaries are
// whole minutes of wall time and UTC offsets are whole seconds, so whole
// seconds represent every boundary exactly.
//
// It walks the zone's offset periods (the spans between transitions,
// found with time.Time.ZoneBounds). Inside one period the offset is fixed,
// so wall time is instant plus offset: each local day's intervals map to
// instants by subtraction and are clipped to the period. That one rule
// gives all the DST behaviour: a wall time in a spring-forward gap lies
// after the end of the old period and before the start of the new, so it
// is clipped to the transition; a doubled hour appears in both periods and
// is emitted twice. Walking by period rather than by day also keeps the
// output in time order when a fold crosses midnight.
type walker struct {
	c     *Calendar
	pos   int64 // segments are clipped to start at or after pos
	until int64 // no segment starting at or after until is needed
	limit bool  // give up after maxGap seconds without a segment
	last  int64 // end of the last segment, or the starting instant

	inPeriod bool
	off      int64 // UTC offset of the current period
	pEnd     int64 // first instant after the current period
	day      int64 // current local day, days since 1970-01-01
	idx      int   // next interval of day
}

// walk starts a walker at the instant from. Segments starting at or after
// until are not needed; limit enables the 5-year give-up, which Between
// does not want because its end bounds the walk already.
func (c *Calendar) walk(from, until int64, limit bool) walker {
	return walker{c: c, pos: from, until: until, limit: limit, last: from}
}

// next returns the next open segment [a, b), or ok false when the walk
// reached until or gave up.
func (w *walker) next() (a, b int64, ok bool) {
	for {
		if !w.inPeriod {
			if w.pos >= w.until {
				return 0, 0, false
			}
			lt := time.Unix(w.pos, 0).In(w.c.loc)
			_, off := lt.Zone()
			_, end := lt.ZoneBounds()
			w.off = int64(off)
			w.pEnd = math.MaxInt64
			if !end.IsZero() {
				w.pEnd = end.Unix()
			}
			if w.pEnd <= w.pos {
				// ZoneBounds is wrong on the last UTC day of a leap year
				// served by the zone's TZ rule (beyond its last listed
				// transition, such as 2040 with today's tzdata): it
				// returns that day's start, a year end counted as 365
				// days (golang/go#81583). The time package splits these
				// rule-based periods at UTC year ends, so its offset is
				// fixed until the next UTC midnight, the real year end.
				// Without this the walk would never advance.
				w.pEnd = (floorDiv(w.pos, secondsPerDay) + 1) * secondsPerDay
			}
			w.day = floorDiv(w.pos+w.off, secondsPerDay)
			w.idx = 0
			w.inPeriod = true
		}
		midnight := w.day*secondsPerDay - w.off // this day's 00:00 at this offset
		if midnight >= w.pEnd {
			w.pos = w.pEnd
			w.inPeriod = false
			continue
		}
		if midnight >= w.until || (w.limit && midnight-w.last > maxGap) {
			return 0, 0, false
		}
		ivs := w.c.weekly[weekdayOf(w.day)]
		if w.idx >= len(ivs) || (w.idx == 0 && w.c.holiday(w.day)) {
			w.day++
			w.idx = 0
			continue
		}
		iv := ivs[w.idx]
		w.idx++
		a = max(midnight+int64(iv.Start)*60, w.pos)
		b = min(midnight+int64(iv.End)*60, w.pEnd)
		if a < b {
			w.last = b
			return a, b, true
		}
	}
}

// floorDiv divides rounding toward negative infinity, so instants before
// 1970 land on the right day.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// weekdayOf returns the weekday of a day counted from 1970-01-01, a
// Thursday.
func weekdayOf(day int64) time.Weekday {
	return time.Weekday(((day+4)%7 + 7) % 7)
}

// daysFromCivil returns the days from 1970-01-01 to a proleptic Gregorian
// date (Howard Hinnant's algorithm), the numbering the walk uses for local
// days.
func daysFromCivil(y int, m time.Month, d int) int64 {
	yy := int64(y)
	if m <= time.February {
		yy--
	}
	era := floorDiv(yy, 400)
	yoe := yy - era*400
	mp := (int64(m) + 9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
