package chsink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	buffered      prometheus.Gauge
	inserted      *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	retries       *prometheus.CounterVec
	lookedUp      *prometheus.CounterVec
	filterLoads   *prometheus.CounterVec
	insertSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "buffered_rows", Help: "Rows waiting for an insert; bounded by MaxBuffered."}),
		inserted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "inserted_rows_total", Help: "Rows inserted, by table."}, []string{"table"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "duplicate_rows_total", Help: "Rows skipped because the table had them, by table."}, []string{"table"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "rejected_rows_total", Help: "Rows dead-lettered because they could not be encoded, by table."}, []string{"table"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "insert_retries_total", Help: "Failed inserts that are retried, by table."}, []string{"table"}),
		lookedUp: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "looked_up_ids_total", Help: "Ids looked up in the id index before an insert, by table."}, []string{"table"}),
		filterLoads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "id_filter_loads_total", Help: "Loads of the in-memory id filter from the id index, by table."}, []string{"table"}),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "eprostream", Subsystem: "chsink",
			Name: "insert_seconds", Help: "Duration of successful inserts, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"table"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.buffered, m.inserted, m.duplicates, m.rejected, m.retries, m.lookedUp, m.filterLoads, m.insertSeconds} {
			if err := reg.Register(c); err != nil {
				return metrics{}, fmt.Errorf("chsink: metrics: %w", err)
			}
		}
	}
	return m, nil
}
