package metrics

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poststelle/poststelle/gateway/offices"
)

// EEBTasks reports, at scrape time, the eEB tasks awaiting each office's
// decision and how many of them are overdue, from the office inbox's read
// model (offices.CountEEB). Overdue is what the log says (an EEBOverdue per
// task, offices.OverdueWatch), so every node reports the same once it has
// folded the same events.
type EEBTasks struct {
	DB     *sql.DB
	Logger *slog.Logger
}

var eebTasksDesc = prometheus.NewDesc("poststelle_eeb_tasks",
	"eEB tasks awaiting an office's decision (state open: all of them; overdue: those past their due date), by office.",
	[]string{"office", "state"}, nil)

// Describe implements prometheus.Collector.
func (c *EEBTasks) Describe(ch chan<- *prometheus.Desc) { ch <- eebTasksDesc }

// Collect implements prometheus.Collector.
func (c *EEBTasks) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := offices.CountEEB(ctx, c.DB)
	if err != nil {
		l := c.Logger
		if l == nil {
			l = slog.Default()
		}
		l.Warn("metrics: eEB tasks not counted", "err", err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(eebTasksDesc, prometheus.GaugeValue, float64(n.Open), n.Office, "open")
		ch <- prometheus.MustNewConstMetric(eebTasksDesc, prometheus.GaugeValue, float64(n.Overdue), n.Office, "overdue")
	}
}
