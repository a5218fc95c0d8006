package main

import (
	"strconv"

	"github.com/poststelle/poststelle/bench/figures"
)

// intakeEvents is what the cluster folds per second at the SMTP intake
// rate measured in issue 16 (765 messages/s, 5 events each).
const intakeEvents = 765 * 5

// summarize adds what three nodes spend on their read stores per second of
// intake: three per-node SQLite folds against one fold into a shared
// PostgreSQL (its client and its server); the CPU per read beyond the fold
// on either; and how many nodes it would take before one shared fold costs
// less than a fold on every node.
func summarize(fig *figures.Run) {
	get := func(k string) float64 { f, _ := fig.Get(k); return f.Value }
	sqliteFold := get("sqlite.fold.cpu_us_per_event.self")
	sqliteRead := perRead(fig, "sqlite", 16, false)
	fig.Add("sqlite.read.r16.cpu_us_per_read", "sqlite: CPU per list-and-fetch, 16 readers, beyond the fold", sqliteRead, "µs/read")
	fig.Add("nodes3.sqlite_cpu_s_per_s", "3 nodes, each folding into its own SQLite: CPU per second of intake",
		3*sqliteFold*intakeEvents/1e6, "CPU s/s")
	for _, pg := range []string{"pg", "pg-async"} {
		pgFold := get(pg+".fold.cpu_us_per_event.self") + get(pg+".fold.cpu_us_per_event.server")
		fig.Add("nodes3."+pg+".cpu_s_per_s", "3 nodes sharing "+pg+", one fold: CPU per second of intake",
			pgFold*intakeEvents/1e6, "CPU s/s")
		fig.Add(pg+".read.r16.cpu_us_per_read", pg+": CPU per list-and-fetch (client and server), 16 readers, beyond the fold",
			perRead(fig, pg, 16, true), "µs/read")
		if sqliteFold > 0 {
			fig.Add(pg+".breakeven_nodes", pg+": nodes at which one shared fold costs as much CPU as a SQLite fold on each (reads aside)",
				pgFold/sqliteFold, "nodes")
		}
	}
}

// perRead is the CPU (µs) one list-and-fetch pair cost: the CPU of the
// read phase less that of the fold and the appends in it, priced per event
// folded by the phase beside it with the same offered rate and no readers
// (with readers the fold may fall behind and do less), per pair.
func perRead(fig *figures.Run, store string, readers int, server bool) float64 {
	get := func(k string) float64 { f, _ := fig.Get(k); return f.Value }
	key, idle := store+".read.r"+strconv.Itoa(readers), store+".read.r0"
	folded := func(k string) float64 { return get(k+".appended_events") - get(k+".unfolded_events") }
	cpu := func(k string) float64 {
		c := get(k + ".cpu_s.self")
		if server {
			c += get(k + ".cpu_s.server")
		}
		return c
	}
	pairs, idleFolded := get(key+".reads"), folded(idle)
	if pairs == 0 || idleFolded == 0 {
		return 0
	}
	return (cpu(key) - cpu(idle)*folded(key)/idleFolded) * 1e6 / pairs
}
