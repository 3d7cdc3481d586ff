package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
)

// Finding: an activation with a 250 KiB workload or instance string was logged three times in
// full and echoed in the reply. Every echo is bounded, and refusals are logged at a bounded rate
// with the rest counted.
func TestRefusalsBoundedInLogAndReply(t *testing.T) {
	f := newFixture(t)
	if a := f.do(call{method: "POST", path: api.PathManifest, body: testManifest(t)}); a.status != 200 {
		t.Fatalf("set the first manifest: %d %s", a.status, a.err.Message)
	}
	huge := strings.Repeat("w", 250<<10)
	bodies := map[string][]byte{
		"workload": mustJSON(t, api.ActivationRequest{Workload: huge, Instance: "i1", Quote: []byte{1}, CSR: []byte{1}}),
		"instance": mustJSON(t, api.ActivationRequest{Workload: "web", Instance: huge, Quote: []byte{1}, CSR: []byte{1}}),
		"key":      []byte(`{"` + huge + `":1}`),
	}
	for name, body := range bodies {
		before := len(f.logs.String())
		a := f.do(call{method: "POST", path: api.PathActivate, body: body, mesh: true})
		if a.status < 400 {
			t.Fatalf("%s: status %d", name, a.status)
		}
		if len(a.body) > 1024 {
			t.Errorf("%s: reply of %d bytes echoes the input: %.200s", name, len(a.body), a.body)
		}
		if !strings.Contains(a.err.Message, "(256000 bytes)") {
			t.Errorf("%s: reply %q does not say how long the shortened string was", name, a.err.Message)
		}
		if grown := len(f.logs.String()) - before; grown > 2048 {
			t.Errorf("%s: one refusal grew the log by %d bytes", name, grown)
		}
	}

	// A flood of refusals within one instant: the burst is logged, the rest is counted.
	t0 := time.Now()
	f.s.now = func() time.Time { return t0 }
	const flood = 500
	lines := func() int { return bytes.Count([]byte(f.logs.String()), []byte(`"msg":"request refused"`)) }
	before := lines()
	small := mustJSON(t, api.ActivationRequest{Workload: "ghost", Instance: "i1", Quote: []byte{1}, CSR: []byte{1}})
	for range flood {
		f.do(call{method: "POST", path: api.PathActivate, body: small, mesh: true})
	}
	logged := lines() - before
	if logged > refusalBurst {
		t.Errorf("%d of %d refusals were logged; want at most the burst of %d", logged, flood, refusalBurst)
	}
	unlogged := f.metric("cloister_api_refusals_unlogged_total")
	if int(unlogged)+logged < flood {
		t.Errorf("logged %d + counted as unlogged %v = fewer than the %d refusals", logged, unlogged, flood)
	}
	// A second later the next line says how many were left out.
	t0 = t0.Add(time.Second)
	f.do(call{method: "POST", path: api.PathActivate, body: small, mesh: true})
	if !strings.Contains(f.logs.String(), `"refusals_not_logged_before":`) {
		t.Errorf("no log line says how many refusals were left out")
	}
	if got := f.counter("mesh", "POST "+api.PathActivate, 404); got < flood {
		t.Errorf("cloister_api_requests_total counted %v refusals, want at least %d", got, flood)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metric returns the sum of a counter's values over all its labels.
func (f *fixture) metric(name string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
