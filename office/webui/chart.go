package webui

import (
	"fmt"
	"slices"
	"time"
)

// barChart is a stacked bar chart of counts per day, drawn as SVG by the
// "chart" template: no script, and every bar carries its number as a
// title for screen readers and tooltips.
type barChart struct {
	ID, Title         string
	Width, Height     int
	Left, Right, Base int
	Bars              []bar
	Ticks             []tick
	Legend            []legendEntry
}

type bar struct {
	X, Y, W, H int
	Series     int
	Label      string
}

type tick struct {
	X, Y   int
	Anchor string
	Text   string
}

type legendEntry struct {
	Series int
	Name   string
	Total  int64
}

// dayCount is one series' count on one day.
type dayCount struct {
	Day    string // YYYY-MM-DD
	Series string
	N      int64
}

// maxSeries bounds the colours; further series are summed up as the last.
const maxSeries = 8

// newBarChart lays out counts for the days up to and including last.
func newBarChart(id, title string, counts []dayCount, last time.Time, days int) barChart {
	c := barChart{ID: id, Title: title, Width: 640, Height: 220, Left: 40, Right: 630, Base: 190}
	totals := map[string]int64{}
	for _, dc := range counts {
		totals[dc.Series] += dc.N
	}
	names := make([]string, 0, len(totals))
	for n := range totals {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if totals[a] != totals[b] {
			if totals[a] > totals[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	series := map[string]int{}
	for i, n := range names {
		series[n] = min(i, maxSeries-1)
	}
	for i, n := range names {
		if i < maxSeries-1 || len(names) == maxSeries {
			c.Legend = append(c.Legend, legendEntry{Series: series[n], Name: n, Total: totals[n]})
		} else if i == maxSeries-1 {
			c.Legend = append(c.Legend, legendEntry{Series: maxSeries - 1, Name: "…", Total: totals[n]})
		} else {
			c.Legend[len(c.Legend)-1].Total += totals[n]
		}
	}
	dayIndex := map[string]int{}
	first := last.AddDate(0, 0, -(days - 1))
	for i := range days {
		dayIndex[first.AddDate(0, 0, i).Format("2006-01-02")] = i
	}
	perDay := make([]map[int]int64, days)
	var peak int64 = 1
	for i := range perDay {
		perDay[i] = map[int]int64{}
	}
	for _, dc := range counts {
		d, ok := dayIndex[dc.Day]
		if !ok {
			continue
		}
		perDay[d][series[dc.Series]] += dc.N
	}
	for _, m := range perDay {
		var sum int64
		for _, n := range m {
			sum += n
		}
		peak = max(peak, sum)
	}
	slot := (c.Right - c.Left) / days
	height := c.Base - 20
	for d, m := range perDay {
		x, y := c.Left+d*slot+2, c.Base
		for s := range maxSeries {
			n := m[s]
			if n == 0 {
				continue
			}
			h := max(1, int(int64(height)*n/peak))
			y -= h
			c.Bars = append(c.Bars, bar{X: x, Y: y, W: slot - 4, H: h, Series: s,
				Label: fmt.Sprintf("%s: %d", first.AddDate(0, 0, d).Format("2006-01-02"), n)})
		}
		if d%2 == 0 || days <= 7 {
			c.Ticks = append(c.Ticks, tick{X: x + (slot-4)/2, Y: c.Base + 16, Anchor: "middle", Text: first.AddDate(0, 0, d).Format("02.01.")})
		}
	}
	c.Ticks = append(c.Ticks, tick{X: c.Left - 6, Y: c.Base - height + 4, Anchor: "end", Text: fmt.Sprint(peak)},
		tick{X: c.Left - 6, Y: c.Base, Anchor: "end", Text: "0"})
	return c
}
