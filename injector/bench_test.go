package injector_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkPodAdmission measures what the webhook adds to a pod's creation through the real API
// server: "webhook" creates labelled pods (the API server calls the webhook, which looks the
// workload up in the cached manifest, lists the namespace's Services and patches the pod);
// "none" creates the same pods unlabelled, which the objectSelector keeps from the webhook. It
// reports the median and 99th percentile of the creation's latency. Run it with
// -benchtime=1000x for the figures in docs/kubernetes.md.
func BenchmarkPodAdmission(b *testing.B) {
	e := startEnv(b, envOpts{})
	pods := e.cluster.Client.CoreV1().Pods(appsNS)
	for _, mode := range []struct{ name, workload string }{{"none", ""}, {"webhook", "web"}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			n0, sum0 := webhookTime(b, e)
			lat := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				p := pod(fmt.Sprintf("bench-%s-%d-%d", mode.name, b.N, i), mode.workload)
				start := time.Now()
				if _, err := pods.Create(b.Context(), p, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				i++
			}
			b.StopTimer()
			slices.Sort(lat)
			// The webhook's own time to answer (decode, look up, patch), as its metric has it.
			if n, sum := webhookTime(b, e); n > n0 {
				b.ReportMetric((sum-sum0)/float64(n-n0)*1000, "webhook-mean-ms")
			}
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// webhookTime reads the webhook's own count and total time of answered reviews.
func webhookTime(b *testing.B, e *env) (uint64, float64) {
	mfs, err := e.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "cloister_injector_admission_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}
