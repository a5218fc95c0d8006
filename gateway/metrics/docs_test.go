package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// registered lists the names of the gateway's own metrics.
func registered(t *testing.T) []string {
	t.Helper()
	fams, err := New().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	// Vectors without a child yet are not gathered; the descriptors are.
	for _, d := range []string{"poststelle_log_events_total", "poststelle_intake_messages_total", "poststelle_intake_bytes_total",
		"poststelle_verification_signatures_total", "poststelle_verification_written_form_total", "poststelle_routing_routed_total",
		"poststelle_delivery_total", "poststelle_answers_total", "poststelle_processing_failed_total", "poststelle_log_observed_offset",
		"poststelle_blob_operation_seconds", "poststelle_blob_errors_total", "poststelle_log_end_offset",
		"poststelle_projection_lag_events", "poststelle_handler_lag_events", "poststelle_consumer_group_assignment", "poststelle_eeb_tasks",
		"poststelle_evidence_records_total", "poststelle_evidence_records_next_due_timestamp_seconds",
		"poststelle_evidence_records_last_run_timestamp_seconds"} {
		if !slices.Contains(names, d) {
			names = append(names, d)
		}
	}
	return names
}

var metricName = regexp.MustCompile(`poststelle_[a-z_]+`)

// TestDashboardUsesRealMetrics: every series the Grafana dashboard queries
// exists, so a renamed metric cannot leave an empty panel behind.
func TestDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-poststelle.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := registered(t)
	used := 0
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			for _, n := range metricName.FindAllString(q.Expr, -1) {
				n = strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_")
				if !slices.Contains(names, n) {
					t.Errorf("panel %q queries %s, which the gateway does not export", p.Title, n)
				}
				used++
			}
		}
	}
	if used < 10 {
		t.Fatalf("the dashboard queries only %d gateway series", used)
	}
}

// TestOperationsDocListsMetrics: docs/operations.md names every metric.
func TestOperationsDocListsMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range registered(t) {
		if strings.HasPrefix(n, "poststelle_") && !strings.Contains(string(b), "`"+n+"`") {
			t.Errorf("docs/operations.md does not describe %s", n)
		}
	}
}
