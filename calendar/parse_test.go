package calendar

import (
	"strings"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in      string
		want    Interval
		wantErr string // substring of the error; "" means no error
	}{
		{"09:00-13:00", Interval{540, 780}, ""},
		{"00:00-24:00", Interval{0, 1440}, ""},
		{"00:00-00:01", Interval{0, 1}, ""},
		{"23:59-24:00", Interval{1439, 1440}, ""},
		{"13:07-18:59", Interval{787, 1139}, ""},

		{"", Interval{}, `"": want HH:MM-HH:MM`},
		{"9:00-18:00", Interval{}, "want HH:MM-HH:MM"},
		{"09:00-18:00 ", Interval{}, "want HH:MM-HH:MM"},
		{" 09:00-18:00", Interval{}, "want HH:MM-HH:MM"},
		{"09:00 18:00", Interval{}, "want HH:MM-HH:MM"},
		{"09:00–18:00", Interval{}, "want HH:MM-HH:MM"}, // en dash
		{"09:00_18:00", Interval{}, "want HH:MM-HH:MM"},
		{"09.00-18:00", Interval{}, `"09.00": want HH:MM`},
		{"09:00-18.00", Interval{}, `"18.00": want HH:MM`},
		{"0a:00-18:00", Interval{}, `"0a:00": want HH:MM`},
		{"09:00-18:0x", Interval{}, `"18:0x": want HH:MM`},
		{"+9:00-18:00", Interval{}, `"+9:00": want HH:MM`},
		{"٠٩:00-18:00", Interval{}, "want HH:MM-HH:MM"}, // non-ASCII digits
		{"25:00-26:00", Interval{}, `"25:00": out of range 00:00-24:00`},
		{"09:60-18:00", Interval{}, `"09:60": out of range`},
		{"09:00-18:60", Interval{}, `"18:60": out of range`},
		{"09:00-24:01", Interval{}, `"24:01": out of range`},
		{"09:00-99:99", Interval{}, `"99:99": out of range`},
		{"24:00-24:00", Interval{}, "24:00 is allowed only as an end"},
		{"18:00-09:00", Interval{}, "18:00-09:00: the end is not after the start; a night shift is two intervals, one on each day"},
		{"09:00-09:00", Interval{}, "09:00-09:00: the end is not after the start"},
		{"00:00-00:00", Interval{}, "the end is not after the start"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseInterval(tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("ParseInterval(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in      string
		want    Date
		wantErr string
	}{
		{"2026-12-25", Date{2026, time.December, 25}, ""},
		{"2026-01-01", Date{2026, time.January, 1}, ""},
		{"2024-02-29", Date{2024, time.February, 29}, ""}, // leap year
		{"2000-02-29", Date{2000, time.February, 29}, ""}, // divisible by 400
		{"2026-04-30", Date{2026, time.April, 30}, ""},
		{"0001-01-01", Date{1, time.January, 1}, ""},

		{"", Date{}, `"": want YYYY-MM-DD`},
		{"2026-1-01", Date{}, "want YYYY-MM-DD"},
		{"2026/12/25", Date{}, "want YYYY-MM-DD"},
		{"26-12-25", Date{}, "want YYYY-MM-DD"},
		{"2026-12-25T00:00", Date{}, "want YYYY-MM-DD"},
		{"2026-12-2x", Date{}, "want YYYY-MM-DD"},
		{"-026-12-25", Date{}, "want YYYY-MM-DD"},
		{"２026-12-25", Date{}, "want YYYY-MM-DD"}, // full-width digit
		{"2026-00-10", Date{}, `"2026-00-10": month 0 out of range 1-12`},
		{"2026-13-10", Date{}, "month 13 out of range 1-12"},
		{"2026-12-00", Date{}, "day 0 out of range 1-31"},
		{"2026-12-32", Date{}, "day 32 out of range 1-31"},
		{"2026-02-30", Date{}, `"2026-02-30": day 30 out of range 1-28 for February 2026`},
		{"2026-02-29", Date{}, "day 29 out of range 1-28"}, // not a leap year
		{"1900-02-29", Date{}, "day 29 out of range 1-28"}, // divisible by 100
		{"2026-04-31", Date{}, "day 31 out of range 1-30"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDate(tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("ParseDate(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseWeekday(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Weekday
		wantErr bool
	}{
		{"mon", time.Monday, false},
		{"tue", time.Tuesday, false},
		{"wed", time.Wednesday, false},
		{"thu", time.Thursday, false},
		{"fri", time.Friday, false},
		{"sat", time.Saturday, false},
		{"sun", time.Sunday, false},
		{"Mon", 0, true},
		{"MON", 0, true},
		{"monday", 0, true},
		{"mo", 0, true},
		{" mon", 0, true},
		{"", 0, true},
		{"1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWeekday(tt.in)
			if tt.wantErr {
				checkErr(t, err, "want one of mon tue wed thu fri sat sun")
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseWeekday(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	iv := func(s string) Interval { return mustInterval(t, s) }
	tests := []struct {
		name     string
		loc      *time.Location
		weekly   [7][]Interval
		holidays []Date
		wantErr  string
	}{
		{
			name:    "overlap in order",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Monday: {iv("09:00-13:00"), iv("12:00-18:00")}},
			wantErr: "mon: 09:00-13:00 overlaps 12:00-18:00",
		},
		{
			name:    "overlap out of order",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Monday: {iv("12:00-18:00"), iv("09:00-13:00")}},
			wantErr: "mon: 09:00-13:00 overlaps 12:00-18:00",
		},
		{
			name:    "contained",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Sunday: {iv("10:00-11:00"), iv("09:00-18:00")}},
			wantErr: "sun: 09:00-18:00 overlaps 10:00-11:00",
		},
		{
			name:    "duplicate",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Saturday: {iv("09:00-10:00"), iv("09:00-10:00")}},
			wantErr: "sat: 09:00-10:00 overlaps 09:00-10:00",
		},
		{
			name: "overlap after a merge",
			loc:  time.UTC,
			weekly: [7][]Interval{time.Friday: {
				iv("13:00-18:00"), iv("09:00-13:00"), iv("17:00-20:00")}},
			wantErr: "fri: 09:00-18:00 overlaps 17:00-20:00",
		},
		{
			name:    "empty",
			loc:     time.UTC,
			wantErr: "no opening hours on any day",
		},
		{
			name:     "only holidays",
			loc:      time.UTC,
			weekly:   [7][]Interval{time.Monday: {}},
			holidays: []Date{{2026, time.December, 25}},
			wantErr:  "no opening hours on any day",
		},
		{
			name:    "nil location",
			weekly:  [7][]Interval{time.Monday: {iv("09:00-13:00")}},
			wantErr: "nil location",
		},
		{
			name:    "end before start",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Tuesday: {{600, 540}}},
			wantErr: "tue: interval 600-540 minutes: want 0 <= start < end <= 1440",
		},
		{
			name:    "empty interval",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Tuesday: {{600, 600}}},
			wantErr: "tue: interval 600-600 minutes",
		},
		{
			name:    "negative start",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Wednesday: {{-1, 600}}},
			wantErr: "wed: interval -1-600 minutes",
		},
		{
			name:    "end past 24:00",
			loc:     time.UTC,
			weekly:  [7][]Interval{time.Thursday: {{600, 1441}}},
			wantErr: "thu: interval 600-1441 minutes",
		},
		{
			name:     "impossible holiday",
			loc:      time.UTC,
			weekly:   [7][]Interval{time.Monday: {iv("09:00-13:00")}},
			holidays: []Date{{2026, time.February, 30}},
			wantErr:  "holiday 2026-02-30: day 30 out of range 1-28 for February 2026",
		},
		{
			name:     "holiday month 0",
			loc:      time.UTC,
			weekly:   [7][]Interval{time.Monday: {iv("09:00-13:00")}},
			holidays: []Date{{2026, 0, 1}},
			wantErr:  "holiday 2026-00-01: month 0 out of range 1-12",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.loc, tt.weekly, tt.holidays)
			if c != nil {
				t.Errorf("New returned a calendar with error %v", err)
			}
			if err == nil || err.Error() != tt.wantErr && !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewMerges(t *testing.T) {
	iv := func(s string) Interval { return mustInterval(t, s) }
	tests := []struct {
		name string
		in   []Interval
		want []Interval
	}{
		{"adjacent", []Interval{iv("09:00-13:00"), iv("13:00-18:00")}, []Interval{iv("09:00-18:00")}},
		{"adjacent reversed", []Interval{iv("13:00-18:00"), iv("09:00-13:00")}, []Interval{iv("09:00-18:00")}},
		{"chain", []Interval{iv("11:00-12:00"), iv("10:00-11:00"), iv("12:00-13:00")}, []Interval{iv("10:00-13:00")}},
		{"sorted, not merged", []Interval{iv("14:00-18:00"), iv("09:00-13:00")}, []Interval{iv("09:00-13:00"), iv("14:00-18:00")}},
		{"whole day", []Interval{iv("12:00-24:00"), iv("00:00-12:00")}, []Interval{iv("00:00-24:00")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]Interval(nil), tt.in...)
			c, err := New(time.UTC, [7][]Interval{time.Wednesday: in}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.weekly[time.Wednesday]; !equalIntervals(got, tt.want) {
				t.Errorf("merged = %v, want %v", got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("New modified its input: %v, was %v", in, tt.in)
				}
			}
			// Behaviour, not just layout: the seam of a merge is open.
			seam := time.Date(2026, 1, 7, 0, tt.want[0].End-1, 0, 0, time.UTC) // a Wednesday
			if !c.Open(seam) {
				t.Errorf("Open(%v) = false inside merged interval", seam)
			}
		})
	}
}

func equalIntervals(a, b []Interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDaysFromCivil(t *testing.T) {
	// Compare with the time package over a wide range, leap years included.
	for y := -401; y <= 2401; y += 7 {
		for m := time.January; m <= time.December; m++ {
			for _, d := range []int{1, 28, daysIn(y, m)} {
				want := floorDiv(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix(), secondsPerDay)
				if got := daysFromCivil(y, m, d); got != want {
					t.Fatalf("daysFromCivil(%d, %v, %d) = %d, want %d", y, m, d, got, want)
				}
				if got, want := weekdayOf(daysFromCivil(y, m, d)), time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday(); got != want {
					t.Fatalf("weekdayOf(%d-%v-%d) = %v, want %v", y, m, d, got, want)
				}
			}
		}
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func mustInterval(t testing.TB, s string) Interval {
	t.Helper()
	iv, err := ParseInterval(s)
	if err != nil {
		t.Fatal(err)
	}
	return iv
}
