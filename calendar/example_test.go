package calendar_test

import (
	"fmt"
	"time"

	"github.com/triage-dev/triage/calendar"
)

// Office hours in India, Monday to Friday with a lunch break: 30 business
// minutes from Friday 17:45 run out on Monday at 09:15.
func Example() {
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		panic(err)
	}
	day := []calendar.Interval{{Start: 9 * 60, End: 13 * 60}, {Start: 14 * 60, End: 18 * 60}}
	var weekly [7][]calendar.Interval
	for wd := time.Monday; wd <= time.Friday; wd++ {
		weekly[wd] = day
	}
	christmas, _ := calendar.ParseDate("2026-12-25")
	office, err := calendar.New(loc, weekly, []calendar.Date{christmas})
	if err != nil {
		panic(err)
	}

	friday := time.Date(2026, time.March, 6, 17, 45, 0, 0, loc)
	deadline, _ := office.Add(friday, 30*time.Minute)
	fmt.Println(deadline.Format("Mon 2006-01-02 15:04 MST"))
	fmt.Println(office.Open(friday), office.Open(friday.Add(15*time.Minute)))
	fmt.Println(office.Between(friday, deadline))
	// Output:
	// Mon 2026-03-09 09:15 IST
	// true false
	// 30m0s
}

// The configuration format: one interval string per opening.
func ExampleParseInterval() {
	iv, err := calendar.ParseInterval("09:00-13:00")
	fmt.Println(iv, err)
	_, err = calendar.ParseInterval("18:00-09:00")
	fmt.Println(err)
	// Output:
	// {540 780} <nil>
	// 18:00-09:00: the end is not after the start; a night shift is two intervals, one on each day
}
