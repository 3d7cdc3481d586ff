package podman

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// renewalValidity is the workload certificate validity of TestNginxRenewal: the launcher
// renews at about 2/3 of it, every 3.4 to 4 seconds.
const renewalValidity = 6 * time.Second

// TestNginxRenewal runs Debian's nginx, converted as TestNginxProtectedRestarts converts it,
// under the launcher as the container's init with a workload certificate valid for 6 seconds
// and SIGHUP as its reload signal. The launcher renews the certificate twice while nginx runs:
// each time a client trusting only the deployment root gets a certificate with a new serial
// (the one the launcher logged), nginx' master process stays the same while its workers are
// replaced (it reloaded on SIGHUP), the container is neither restarted nor started again, and
// the Coordinator counts one more activation. No handshake fails along the way: nginx never
// serves an expired certificate. podman stop sends SIGTERM to the launcher, which forwards it
// to nginx: nginx shuts down fast and exits 0, and so does the container.
func TestNginxRenewal(t *testing.T) {
	eng := newEngine(t, e2etest.File(nginxBin, "apt-get install nginx-light"), e2etest.Program("ldd", "apt-get install libc-bin"))
	began := time.Now()
	env := e2etest.New(t)
	dir := t.TempDir()
	coord := startCoordinator(t, env)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	ref := deployNginx(t, eng, env, coord, dir, nginxImage(t, dir, port), "nginx-renewal", func(m map[string]any) {
		m["settings"] = map[string]any{"workload_certificate_validity": renewalValidity.String()}
		m["workloads"].(map[string]any)["web"].(map[string]any)["reload_signal"] = "SIGHUP"
	})

	roots := x509.NewCertPool()
	roots.AddCert(coord.root)
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "web.e2e"}
	// served returns the certificate nginx serves, verified against the deployment root only.
	served := func() (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, tlsConf)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf}}
	getPage := func() error {
		res, err := hc.Get("https://" + addr + "/")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if err != nil {
			return err
		}
		if res.StatusCode != 200 || string(b) != "<h1>nginx NGINX-PROTECTED-PAGE</h1>\n" {
			return fmt.Errorf("GET / = %d %q; want 200 and the protected page", res.StatusCode, b)
		}
		return nil
	}
	activations := func() uint64 {
		st, err := client.New(coord.Addrs.Client, coord.root).Status(t.Context())
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		return st.Activations["web"]
	}

	c := eng.start("nginx-renewal", ref, coord.Platform.Dir(), map[string]string{
		"CLOISTER_COORDINATOR": coord.Addrs.Mesh, "CLOISTER_WORKLOAD": "web", "CLOISTER_INSTANCE": "web-" + eng.run,
		"CLOISTER_RETRY_TIMEOUT": "30s",
	})
	// identity is what podman knows of the container's start: it must not change.
	identity := func() string {
		return strings.TrimSpace(eng.must(30*time.Second, "inspect", "--format",
			"id={{.Id}} restarts={{.RestartCount}} started={{.State.StartedAt}} pid={{.State.Pid}}", c.name))
	}
	// nginx lists the container's nginx processes: the master's PID and the workers' PIDs.
	nginx := func() (master string, workers []string) {
		out := eng.must(30*time.Second, "top", c.name, "pid", "args")
		for line := range strings.Lines(out) {
			f := strings.Fields(line)
			switch {
			case len(f) < 2:
			case strings.Contains(line, "nginx: master process"):
				master = f[0]
			case strings.Contains(line, "nginx: worker process") && !strings.Contains(line, "shutting down"):
				workers = append(workers, f[0])
			}
		}
		slices.Sort(workers)
		return master, workers
	}

	var first *x509.Certificate
	e2etest.WaitFor(t, 30*time.Second, "nginx to serve over TLS", func() (bool, string) {
		var err error
		first, err = served()
		return err == nil, fmt.Sprintf("%v\n%s", err, tail(c.logs(), 2000))
	})
	if err := getPage(); err != nil {
		t.Fatal(err)
	}
	// (Its NotBefore is backdated, for clock skew.)
	if left := time.Until(first.NotAfter); left > renewalValidity {
		t.Fatalf("the first certificate expires in %s (at %s); want at most %s", left, first.NotAfter, renewalValidity)
	}
	servedAt := time.Since(began).Round(time.Millisecond)
	startID := identity()
	master, workers := nginx()
	if master == "" || len(workers) == 0 {
		t.Fatalf("podman top shows no nginx master or no worker:\n%s", eng.must(30*time.Second, "top", c.name, "pid", "args"))
	}
	acts := activations()
	t.Logf("nginx serves serial %x (valid %s to %s), master %s, workers %v, %d activations; container %s",
		first.SerialNumber, first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly), master, workers, acts, startID)

	// Two renewals, each seen by a client as a new serial.
	serials := []string{first.SerialNumber.Text(16)}
	var handshakeErrs []string
	for renewal := 1; renewal <= 2; renewal++ {
		prev := serials[len(serials)-1]
		var cur *x509.Certificate
		e2etest.WaitFor(t, 3*renewalValidity, fmt.Sprintf("renewal %d: a certificate with a serial other than %s", renewal, prev), func() (bool, string) {
			cert, err := served()
			if err != nil {
				// nginx keeps its listening sockets across a reload: every handshake must succeed,
				// with a certificate that has not expired.
				handshakeErrs = append(handshakeErrs, fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly+".000"), err))
				var inv x509.CertificateInvalidError
				return false, fmt.Sprintf("%v (expired: %v)", err, errors.As(err, &inv) && inv.Reason == x509.Expired)
			}
			cur = cert
			return cert.SerialNumber.Text(16) != prev, "serial " + cert.SerialNumber.Text(16) + "\n" + tail(c.logs(), 2000)
		})
		serial := cur.SerialNumber.Text(16)
		serials = append(serials, serial)
		if slices.Contains(serials[:len(serials)-1], serial) {
			t.Errorf("renewal %d: serial %s was served before (%v)", renewal, serial, serials)
		}
		if !cur.NotAfter.After(first.NotAfter) {
			t.Errorf("renewal %d: the new certificate expires at %s, not after the first (%s)", renewal, cur.NotAfter, first.NotAfter)
		}
		if err := getPage(); err != nil {
			t.Errorf("renewal %d: %v", renewal, err)
		}
		// The launcher logged this renewal and the signal it sent.
		if logs := c.logs(); !strings.Contains(logs, "serial="+serial) {
			t.Errorf("renewal %d: the launcher did not log serial %s:\n%s", renewal, serial, tail(logs, 3000))
		}
		if got := identity(); got != startID {
			t.Fatalf("renewal %d: the container changed: %s; it was %s", renewal, got, startID)
		}
		// nginx reloaded: the same master, new workers (the old ones finish and exit).
		var m string
		var w []string
		e2etest.WaitFor(t, 10*time.Second, fmt.Sprintf("renewal %d: nginx to replace its workers", renewal), func() (bool, string) {
			m, w = nginx()
			return m != master || (len(w) > 0 && !slices.Equal(w, workers)), fmt.Sprintf("master %s, workers %v", m, w)
		})
		if m != master {
			t.Fatalf("renewal %d: nginx' master process is %q; it was %s (nginx started again)", renewal, m, master)
		}
		workers = w
		e2etest.WaitFor(t, 10*time.Second, fmt.Sprintf("renewal %d: more activations than %d in the Coordinator's counts", renewal, acts), func() (bool, string) {
			n := activations()
			return n > acts, fmt.Sprintf("%d activations", n)
		})
		acts = activations()
		t.Logf("renewal %d after %s: serial %s, valid to %s, workers %v, %d activations", renewal,
			time.Since(began).Round(time.Millisecond), serial, cur.NotAfter.Format(time.TimeOnly), workers, acts)
	}
	if len(handshakeErrs) > 0 {
		t.Errorf("%d TLS handshakes with nginx failed during the renewals; first: %s", len(handshakeErrs), handshakeErrs[0])
	}
	if logs := c.logs(); strings.Count(logs, "application signalled to reload its files") < 2 || strings.Contains(logs, "level=ERROR") {
		t.Errorf("the launcher logged fewer than two reload signals, or an error:\n%s", tail(logs, 4000))
	}

	// podman stop: SIGTERM to the launcher, forwarded to nginx, which exits 0 on it.
	stopAt := time.Now()
	eng.must(time.Minute, "stop", "-t", "10", c.name)
	stopTook := time.Since(stopAt).Round(time.Millisecond)
	state := strings.TrimSpace(eng.must(30*time.Second, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", c.name))
	if state != "exited 0 0" {
		t.Errorf("after podman stop the container is %q; want \"exited 0 0\" (status, nginx' exit code, restarts)", state)
	}
	if stopTook >= 10*time.Second {
		t.Errorf("podman stop took %s: SIGTERM did not stop nginx, podman killed it", stopTook)
	}
	logs := c.logs()
	if !strings.Contains(logs, "msg=\"application ended\" status=0 signaled=false exit_code=0") {
		t.Errorf("the launcher did not log nginx' exit with status 0:\n%s", tail(logs, 3000))
	}
	coord.Stop(t)
	var errs []string
	for line := range strings.Lines(coord.Proc.Output()) {
		if strings.Contains(line, `"level":"ERROR"`) {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("the Coordinator logged %d errors:\n%s", len(errs), strings.Join(errs, ""))
	}
	t.Logf("nginx served %s after the test began, podman stop took %s, %d activations, the test took %s",
		servedAt, stopTook, acts, time.Since(began).Round(time.Millisecond))
}
