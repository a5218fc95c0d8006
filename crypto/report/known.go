package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// KnownDifference is an explained disagreement with DSS, registered as one
// row of the table in crypto/report/DIFFERENCES.md:
//
//	| golden | item | field | ours | DSS | reason |
//
// golden is the oracle job name (e.g. "at-signing/cades/x.p7m"); item,
// field, ours and DSS match a Difference exactly; reason is free text.
type KnownDifference struct {
	Golden string
	Difference
	Reason string
}

// ParseKnownDifferences reads the registered differences: every table row
// with six cells whose first cell is not the header or a separator.
func ParseKnownDifferences(rd io.Reader) ([]KnownDifference, error) {
	var out []KnownDifference
	sc := bufio.NewScanner(io.LimitReader(rd, MaxJSONSize))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if len(line) < 2 || line[0] != '|' || line[len(line)-1] != '|' {
			continue
		}
		cells := strings.Split(line[1:len(line)-1], "|")
		if len(cells) != 6 {
			continue
		}
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if cells[0] == "golden" || strings.HasPrefix(cells[0], "---") || strings.HasPrefix(cells[0], ":--") {
			continue
		}
		if cells[0] == "" || cells[2] == "" {
			return nil, fmt.Errorf("report: known differences line %d: golden and field must be set", n)
		}
		out = append(out, KnownDifference{
			Golden:     cells[0],
			Difference: Difference{Item: cells[1], Field: cells[2], Ours: cells[3], DSS: cells[4]},
			Reason:     cells[5],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: read known differences: %w", err)
	}
	return out, nil
}

// Unexplained returns the differences for the golden file named golden that
// no registered difference explains.
func Unexplained(golden string, diffs []Difference, known []KnownDifference) []Difference {
	var out []Difference
	for _, d := range diffs {
		explained := false
		for _, k := range known {
			if k.Golden == golden && k.Difference == d {
				explained = true
				break
			}
		}
		if !explained {
			out = append(out, d)
		}
	}
	return out
}
