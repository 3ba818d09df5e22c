package calendar

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// randomCalendar returns a calendar with 1-3 intervals on most days, their
// boundaries often on the hours where DST transitions happen, given to New
// in shuffled order, and a few holidays near base. It also returns what
// went in, for the brute-force reference.
func randomCalendar(t testing.TB, r *rand.Rand, loc *time.Location, base time.Time) (*Calendar, [7][]Interval, []Date) {
	t.Helper()
	for {
		var weekly [7][]Interval
		for wd := range weekly {
			if r.IntN(10) < 3 {
				continue
			}
			n := 1 + r.IntN(3)
			var pts []int
			for range 2 * n {
				var p int
				switch r.IntN(3) {
				case 0:
					p = r.IntN(minutesPerDay + 1)
				case 1:
					p = r.IntN(25) * 60 // whole hours, including 24:00
				default:
					p = []int{0, 60, 90, 120, 150, 180, 240}[r.IntN(7)] // around 01:00-03:00
				}
				pts = append(pts, p)
			}
			slices.Sort(pts)
			for i := 0; i < len(pts); i += 2 {
				if pts[i] < pts[i+1] {
					weekly[wd] = append(weekly[wd], Interval{pts[i], pts[i+1]})
				}
			}
			r.Shuffle(len(weekly[wd]), func(i, j int) {
				weekly[wd][i], weekly[wd][j] = weekly[wd][j], weekly[wd][i]
			})
		}
		var holidays []Date
		for range r.IntN(5) {
			d := base.AddDate(0, 0, r.IntN(10)-2)
			holidays = append(holidays, Date{d.Year(), d.Month(), d.Day()})
		}
		c, err := New(loc, weekly, holidays)
		if err != nil {
			continue // every day empty: try again
		}
		return c, weekly, holidays
	}
}

// bruteOpen is an independent Open: the time package's own wall clock,
// the unmerged intervals and a linear holiday search.
func bruteOpen(loc *time.Location, weekly [7][]Interval, holidays []Date, t time.Time) bool {
	l := t.In(loc)
	y, m, d := l.Date()
	if slices.Contains(holidays, Date{y, m, d}) {
		return false
	}
	minute := l.Hour()*60 + l.Minute()
	for _, iv := range weekly[l.Weekday()] {
		if iv.Start <= minute && minute < iv.End {
			return true
		}
	}
	return false
}

// randomInstant is within a few days of a DST transition half of the time,
// elsewhere in 2026 otherwise, with random seconds and nanoseconds.
func randomInstant(r *rand.Rand, loc *time.Location) time.Time {
	transitions := []time.Time{
		time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC),   // New York spring
		time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC),  // New York fall
		time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),  // Berlin spring
		time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), // Berlin fall
	}
	var t time.Time
	if r.IntN(2) == 0 {
		t = transitions[r.IntN(len(transitions))].Add(time.Duration(r.Int64N(int64(6*24*time.Hour))) - 3*24*time.Hour)
	} else {
		t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	}
	switch r.IntN(3) {
	case 0:
		t = t.Truncate(time.Minute)
	case 1:
		t = t.Truncate(time.Second)
	}
	return t.In(loc)
}

func TestProperties(t *testing.T) {
	zones := []*time.Location{load(t, "Asia/Kolkata"), load(t, "America/New_York"), load(t, "Europe/Berlin")}
	r := rand.New(rand.NewPCG(1, 2026))
	cases := 2000
	if testing.Short() {
		cases = 200
	}
	for i := range cases {
		loc := zones[i%len(zones)]
		tm := randomInstant(r, loc)
		c, weekly, holidays := randomCalendar(t, r, loc, tm)

		// Add and Between are inverse, Add is the earliest such instant,
		// and Add is monotonic in d.
		d := time.Duration(r.Int64N(int64(14 * 24 * time.Hour)))
		if r.IntN(4) == 0 {
			d = d.Truncate(time.Minute)
		}
		end, ok := c.Add(tm, d)
		if !ok {
			t.Fatalf("case %d: Add(%v, %v) found no opening; weekly %v", i, tm, d, weekly)
		}
		if got := c.Between(tm, end); got != d {
			t.Fatalf("case %d: Between(t, Add(t, %v)) = %v; t %v, end %v, weekly %v, holidays %v",
				i, d, got, tm, end, weekly, holidays)
		}
		if d > 0 {
			if got := c.Between(tm, end.Add(-time.Nanosecond)); got != d-time.Nanosecond {
				t.Fatalf("case %d: Add(t, %v) = %v is not the earliest: Between up to 1ns before = %v", i, d, end, got)
			}
		}
		d2 := d + time.Duration(r.Int64N(int64(3*24*time.Hour)))
		end2, _ := c.Add(tm, d2)
		if end2.Before(end) {
			t.Fatalf("case %d: Add not monotonic: Add(t, %v) = %v before Add(t, %v) = %v", i, d2, end2, d, end)
		}

		// NextOpen is open, nothing before it is, and it agrees with Open.
		next, ok := c.NextOpen(tm)
		if !ok || !c.Open(next) || c.Between(tm, next) != 0 || (c.Open(tm) != next.Equal(tm)) {
			t.Fatalf("case %d: NextOpen(%v) = %v, %v; Open(t) = %v", i, tm, next, ok, c.Open(tm))
		}
		if d > 0 && next.After(end) {
			t.Fatalf("case %d: NextOpen %v after Add %v", i, next, end)
		}

		// Between against a minute-by-minute count over up to 3 days.
		a := tm.Truncate(time.Minute)
		b := a.Add(time.Duration(r.IntN(3*24*60)) * time.Minute)
		var want time.Duration
		for m := a; m.Before(b); m = m.Add(time.Minute) {
			open := bruteOpen(loc, weekly, holidays, m)
			if open {
				want += time.Minute
			}
			if r.IntN(50) == 0 && c.Open(m) != open {
				t.Fatalf("case %d: Open(%v) = %v, brute force %v", i, m, !open, open)
			}
		}
		if got := c.Between(a, b); got != want {
			t.Fatalf("case %d: Between(%v, %v) = %v, brute force %v; weekly %v, holidays %v",
				i, a, b, got, want, weekly, holidays)
		}
	}
}
