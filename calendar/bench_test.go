package calendar

import (
	"testing"
	"time"
)

// benchCalendar is New York office hours with a lunch break and two
// holidays; the two weeks benchmarked cross the fall-back transition and
// Thanksgiving.
func benchCalendar(b *testing.B) (*Calendar, time.Time) {
	ny := load(b, "America/New_York")
	c := mk(b, ny, weekdays+"=09:00-12:30,13:30-18:00", "2026-11-26", "2026-11-27")
	return c, time.Date(2026, 10, 28, 11, 17, 3, 0, ny)
}

func BenchmarkAdd(b *testing.B) {
	c, from := benchCalendar(b)
	d := 80 * time.Hour // ten business days: two weeks
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Add(from, d); !ok {
			b.Fatal("no opening")
		}
	}
}

func BenchmarkAddShort(b *testing.B) {
	c, from := benchCalendar(b)
	b.ReportAllocs()
	for b.Loop() {
		c.Add(from, 2*time.Hour)
	}
}

func BenchmarkBetween(b *testing.B) {
	c, from := benchCalendar(b)
	to := from.AddDate(0, 0, 14)
	b.ReportAllocs()
	for b.Loop() {
		if c.Between(from, to) == 0 {
			b.Fatal("zero")
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	c, from := benchCalendar(b)
	b.ReportAllocs()
	for b.Loop() {
		c.Open(from)
	}
}
