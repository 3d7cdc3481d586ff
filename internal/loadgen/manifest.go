package loadgen

import (
	"encoding/hex"
	"fmt"
)

// Manifest returns a deployment manifest with one workload that the benchmark's simulated
// quotes satisfy. Its templates are those of a realistic service: certificate, key, CA and a
// secret as files, a secret in the environment.
func Manifest(workload string) []byte {
	return fmt.Appendf(nil, `{
  "packages": {"bench": {"mrenclave": %q}},
  "workloads": {"%s": {
    "package": "bench",
    "files": {
      "/run/bench/cert.pem": "{{.Workload.Chain}}",
      "/run/bench/key.pem": "{{.Workload.Key}}",
      "/run/bench/ca.pem": "{{.CA.Root}}",
      "/run/bench/config.ini": "token={{.Secrets.token.Hex}}\nid={{.Workload.SPIFFEID}}\n"
    },
    "env": {"API_TOKEN": "{{.Secrets.token.Hex}}", "INSTANCE": "{{.Workload.Instance}}"}
  }},
  "secrets": {"token": {"type": "symmetric-key", "size": 256}}
}`, hex.EncodeToString(BenchMREnclave[:]), workload)
}
