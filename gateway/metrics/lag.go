package metrics

import (
	"context"
	"database/sql"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poststelle/poststelle/eventstore"
)

// Positions reports, at scrape time, the log's end per partition and how
// far each projection (table projection_positions) and each pipeline
// handler (table subscription_offsets) of this node is behind it.
type Positions struct {
	Log    eventstore.Log
	DB     *sql.DB
	Logger *slog.Logger
}

var (
	endDesc = prometheus.NewDesc("poststelle_log_end_offset",
		"The offset the next event of a partition will get.", []string{"partition"}, nil)
	projectionLagDesc = prometheus.NewDesc("poststelle_projection_lag_events",
		"Events of a partition that a projection on this node has not applied yet.", []string{"projection", "partition"}, nil)
	handlerLagDesc = prometheus.NewDesc("poststelle_handler_lag_events",
		"Events of a partition that a pipeline handler on this node has not processed yet.", []string{"handler", "partition"}, nil)
	assignmentDesc = prometheus.NewDesc("poststelle_consumer_group_assignment",
		"1 for each partition a consumer group (Kafka) currently gives this node.", []string{"group", "partition"}, nil)
)

// Assigner is implemented by logs whose subscribers share partitions in
// consumer groups (kafkalog): which partitions each group gives this process.
type Assigner interface {
	Assignments() map[string][]int32
}

// Describe implements prometheus.Collector.
func (p *Positions) Describe(ch chan<- *prometheus.Desc) {
	ch <- endDesc
	ch <- projectionLagDesc
	ch <- handlerLagDesc
	ch <- assignmentDesc
}

// scrapeTimeout bounds the queries of one scrape.
const scrapeTimeout = 5 * time.Second

// Collect implements prometheus.Collector.
func (p *Positions) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	ends, err := Ends(ctx, p.Log)
	if err != nil {
		p.logger().Warn("metrics: log end not read", "err", err)
		return
	}
	for i, end := range ends {
		ch <- prometheus.MustNewConstMetric(endDesc, prometheus.GaugeValue, float64(end), strconv.Itoa(i))
	}
	p.lags(ctx, ch, projectionLagDesc, `SELECT name, part, next FROM projection_positions`, ends)
	p.lags(ctx, ch, handlerLagDesc, `SELECT grp, part, next FROM subscription_offsets`, ends)
	if a, ok := p.Log.(Assigner); ok {
		for group, parts := range a.Assignments() {
			for _, part := range parts {
				ch <- prometheus.MustNewConstMetric(assignmentDesc, prometheus.GaugeValue, 1, group, strconv.Itoa(int(part)))
			}
		}
	}
}

func (p *Positions) lags(ctx context.Context, ch chan<- prometheus.Metric, desc *prometheus.Desc, query string, ends []int64) {
	rows, err := p.DB.QueryContext(ctx, query)
	if err != nil {
		return // the table appears with its first user
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var part, next int64
		if err := rows.Scan(&name, &part, &next); err != nil || part < 0 || part >= int64(len(ends)) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(max(0, ends[part]-next)), name, strconv.FormatInt(part, 10))
	}
}

func (p *Positions) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// Ends reads the end offset of every partition.
func Ends(ctx context.Context, l eventstore.Log) ([]int64, error) {
	n, err := l.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	ends := make([]int64, n)
	for i := range ends {
		if ends[i], err = l.End(ctx, int32(i)); err != nil {
			return nil, err
		}
	}
	return ends, nil
}
