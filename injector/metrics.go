package injector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the webhook's Prometheus metrics.
type metrics struct {
	admissions *prometheus.HistogramVec
	reads      *prometheus.CounterVec
	rotations  *prometheus.CounterVec
	certExpiry prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		admissions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cloister_injector_admission_duration_seconds",
			Help:    "Time to answer an admission review, by result (mutated, unchanged, denied, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"result"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloister_injector_manifest_reads_total",
			Help: "Reads of the manifest from the Coordinator (after verifying it), by result (ok, error).",
		}, []string{"result"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloister_injector_certificate_writes_total",
			Help: "Serving certificates this replica wrote to the Secret, by kind (created, renewed).",
		}, []string{"kind"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cloister_injector_certificate_expiry_seconds",
			Help: "Expiry of the served certificate, Unix seconds.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.admissions, m.reads, m.rotations, m.certExpiry)
	}
	return m
}

func (m *metrics) observe(result string, d time.Duration) {
	m.admissions.WithLabelValues(result).Observe(d.Seconds())
}

func (m *metrics) read(err error) {
	if err != nil {
		m.reads.WithLabelValues("error").Inc()
		return
	}
	m.reads.WithLabelValues("ok").Inc()
}
