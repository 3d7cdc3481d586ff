package core

import (
	"github.com/cloister-dev/cloister/api"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Coordinator core's Prometheus collectors.
type metrics struct {
	activations     *prometheus.CounterVec
	state           *prometheus.GaugeVec
	manifestVersion prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloister_activations_total",
			Help: "Workload activations by workload and result (ok, or the error code).",
		}, []string{"workload", "result"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cloister_coordinator_state",
			Help: "1 for the Coordinator's current state, 0 for the others.",
		}, []string{"state"}),
		manifestVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cloister_manifest_version",
			Help: "Version of the current deployment manifest (0 before the first).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.activations, m.state, m.manifestVersion)
	}
	return m
}

func (m *metrics) setState(s api.Status) {
	for _, st := range []string{api.StateWaitingForManifest, api.StateRunning} {
		v := 0.0
		if st == s.State {
			v = 1
		}
		m.state.WithLabelValues(st).Set(v)
	}
	m.manifestVersion.Set(float64(s.ManifestVersion))
}
