package launcher

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/coordtest"
)

// BenchmarkPreflight is what the check before activation adds to a start: reading the
// deployment manifest on the connection already verified, and checking three delivered files'
// places (a directory on disk, a missing one, one on tmpfs).
func BenchmarkPreflight(b *testing.B) {
	c := coordtest.Start(b)
	dir := b.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "cloister-bench-")
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	doc := `{"packages": {"p": {"mrenclave": "` + benchPackageMR + `"}}, "workloads": {"app": {"package": "p", "files": {` +
		`"` + dir + `/key.pem": "{{.Workload.Key}}", "` + dir + `/new/cert.pem": "{{.Workload.Cert}}", "` + shm + `/ca.pem": "{{.Workload.Cert}}"}}}}`
	if _, err := c.Core.SetManifest(b.Context(), nil, []byte(doc)); err != nil {
		b.Fatal(err)
	}
	store, err := openDelivered(filepath.Join(shm, "delivered"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer store.close()
	l := &launch{cfg: Config{Workload: "app"}, att: &attestation{simulated: true}, m: &enclave.Manifest{}, store: store, log: slog.New(slog.DiscardHandler)}
	s, err := client.DialMesh(b.Context(), c.MeshAddr, client.ExpectSimulated(c.Platform.Root()))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.preflight(b.Context(), s); err != nil {
			b.Fatal(err)
		}
	}
}

const benchPackageMR = "0101010101010101010101010101010101010101010101010101010101010101" // any measurement
