package pcs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

const day = 24 * time.Hour

// cacheDir is the cache directory of the simulated platform's set in e.
func (e *env) cacheDir() string {
	return filepath.Join(e.dir, fmt.Sprintf("%X-processor", e.plat.FMSPC()))
}

// quote returns a quote of e's platform.
func (e *env) quote(t testing.TB) []byte {
	t.Helper()
	q, err := e.plat.Quote(sgx.ReportBody{Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit, XFRM: 3}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestProviderFetchesAndVerifies(t *testing.T) {
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			e := newEnv(t, version)
			col := e.mustCollateral(t)
			res, err := verify.New(e.plat.Root()).Verify(e.quote(t), col, e.clock.now())
			if err != nil {
				t.Fatalf("Verify with the provider's collateral: %v", err)
			}
			if !res.Platform.CRLChecked || res.Platform.CollateralExpired || res.Platform.TCBStatus != verify.UpToDate {
				t.Errorf("platform = %+v; want CRLs checked, collateral valid, UpToDate", res.Platform)
			}
			disk, err := verify.LoadCollateral(e.cacheDir())
			if err != nil {
				t.Fatalf("cache directory: %v", err)
			}
			if !bytes.Equal(disk.TCBInfo.Raw(), col.TCBInfo.Raw()) || !bytes.Equal(disk.PCKCRL.Raw, col.PCKCRL.Raw) {
				t.Error("the cache directory does not hold the served set")
			}
		})
	}
}

func TestProviderCacheHit(t *testing.T) {
	e := newEnv(t, 4)
	e.mustCollateral(t)
	n := e.pcs.total()
	e.clock.set(t0.Add(29 * day))
	for range 3 {
		col := e.mustCollateral(t)
		if col.TCBInfo == nil || len(col.TCBInfoIssuerChain) != 2 || col.TCBInfoIssuerChain[0] == nil {
			t.Fatal("a caller's change to its copy reached the cache")
		}
		col.TCBInfo, col.TCBInfoIssuerChain[0] = nil, nil // the caller's copy
	}
	if got := e.pcs.total(); got != n {
		t.Errorf("the service got %d more requests before nextUpdate; want none", got-n)
	}
	if _, err := e.prov.Collateral(t.Context(), e.plat.FMSPC(), "intermediate"); err == nil {
		t.Error(`Collateral for CA type "intermediate" succeeded`)
	}
}

func TestProviderRefreshesAfterNextUpdate(t *testing.T) {
	e := newEnv(t, 4)
	if got := e.mustCollateral(t).TCBInfo.TCBEvaluationDataNumber; got != sim.DefaultTCBEvaluationDataNumber {
		t.Fatalf("first eval number %d", got)
	}
	e.pcs.serve(variant(t, e.plat, t0.Add(29*day), 18))
	e.clock.set(t0.Add(30*day - time.Second)) // the first set's nextUpdate is t0+30d
	if got := e.mustCollateral(t).TCBInfo.TCBEvaluationDataNumber; got != 17 {
		t.Errorf("before nextUpdate: eval number %d; want the cached 17", got)
	}
	e.clock.set(t0.Add(30 * day))
	col := e.mustCollateral(t)
	if got := col.TCBInfo.TCBEvaluationDataNumber; got != 18 {
		t.Errorf("at nextUpdate: eval number %d; want the refreshed 18", got)
	}
	if n := e.pcs.count("tcb"); n != 2 {
		t.Errorf("TCB Info requested %d times; want 2", n)
	}
	disk, err := verify.LoadCollateral(e.cacheDir())
	if err != nil || disk.TCBInfo.TCBEvaluationDataNumber != 18 {
		t.Errorf("cache directory after the refresh: %v; want eval number 18", err)
	}
}

func TestProviderRefusesRollback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		issue    time.Duration // after t0
		eval     int
		file     string // when set, this file comes from collateral issued at mixIssue with mixEval
		mixIssue time.Duration
		mixEval  int
		want     string
	}{
		{name: "lower evaluation number", issue: 29 * day, eval: 16, want: "TCB Info tcbEvaluationDataNumber 16 is lower than the cached 17"},
		{name: "earlier documents", issue: -day, eval: 17, want: "TCB Info issueDate 2026-02-28T00:00:00Z is earlier than the cached 2026-03-01T00:00:00Z"},
		{name: "lower QE Identity evaluation number", issue: 29 * day, eval: 18, file: "qe_identity.json", mixIssue: 29 * day, mixEval: 16,
			want: "QE Identity tcbEvaluationDataNumber 16 is lower than the cached 17"},
		{name: "earlier QE Identity", issue: 29 * day, eval: 18, file: "qe_identity.json", mixIssue: -day, mixEval: 18,
			want: "QE Identity issueDate 2026-02-28T00:00:00Z is earlier"},
		{name: "earlier PCK CRL", issue: 29 * day, eval: 18, file: "pck_crl.der", mixIssue: -day, mixEval: 17,
			want: "PCK CRL thisUpdate 2026-02-28T00:00:00Z is earlier"},
		{name: "earlier root CA CRL", issue: 29 * day, eval: 18, file: "root_ca_crl.der", mixIssue: -day, mixEval: 17,
			want: "root CA CRL thisUpdate 2026-02-28T00:00:00Z is earlier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4)
			e.mustCollateral(t)
			cached, _ := os.ReadFile(filepath.Join(e.cacheDir(), "tcb_info.json"))
			dir := variant(t, e.plat, t0.Add(tc.issue), tc.eval)
			if tc.file != "" {
				b, err := os.ReadFile(filepath.Join(variant(t, e.plat, t0.Add(tc.mixIssue), tc.mixEval), tc.file))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, tc.file), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e.pcs.serve(dir)
			e.clock.set(t0.Add(31 * day))
			col := e.mustCollateral(t)
			if got := col.TCBInfo.TCBEvaluationDataNumber; got != 17 || !col.TCBInfo.IssueDate.Equal(t0) {
				t.Errorf("served eval number %d issued %v; want the cached 17 issued %v", got, col.TCBInfo.IssueDate, t0)
			}
			if e.pcs.count("tcb") != 2 {
				t.Errorf("TCB Info requested %d times; want 2", e.pcs.count("tcb"))
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "refusing a rollback") || !strings.Contains(logs, tc.want) {
				t.Errorf("log does not report the rollback %q:\n%s", tc.want, logs)
			}
			if disk, _ := os.ReadFile(filepath.Join(e.cacheDir(), "tcb_info.json")); !bytes.Equal(disk, cached) {
				t.Error("the refused set reached the cache directory")
			}
		})
	}
}

func TestProviderServesCachedCopyWhileServiceFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(e *env)
		want string
	}{
		{"HTTP 500", func(e *env) { e.pcs.setStatus(http.StatusInternalServerError) }, "HTTP 500"},
		{"closed listener", func(e *env) { e.pcs.srv.Close() }, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			first := e.mustCollateral(t)
			tc.fail(e)
			e.clock.set(t0.Add(31 * day))
			col := e.mustCollateral(t)
			if !bytes.Equal(col.TCBInfo.Raw(), first.TCBInfo.Raw()) {
				t.Error("served another set than the cached one")
			}
			if logs := e.logs.String(); !strings.Contains(logs, "serving the verified cached copy") || !strings.Contains(logs, tc.want) {
				t.Errorf("log does not report the failure (%q):\n%s", tc.want, logs)
			}
			// The policy decides about the expired copy; the provider still serves it.
			res, err := verify.New(e.plat.Root()).Verify(e.quote(t), col, e.clock.now())
			if err != nil {
				t.Fatalf("Verify with the expired copy: %v", err)
			}
			if !res.Platform.CollateralExpired {
				t.Error("Verify with the expired copy: CollateralExpired is false")
			}
		})
	}
}

func TestProviderRetryInterval(t *testing.T) {
	e := newEnv(t, 4)
	e.mustCollateral(t)
	e.pcs.setStatus(http.StatusBadGateway)
	at := t0.Add(31 * day)
	e.clock.set(at)
	e.mustCollateral(t)
	n := e.pcs.count("tcb")
	e.clock.set(at.Add(pcs.DefaultRetryInterval - time.Second))
	e.mustCollateral(t)
	if got := e.pcs.count("tcb"); got != n {
		t.Errorf("retried %d times within the retry interval; want 0", got-n)
	}
	e.pcs.setStatus(0)
	e.pcs.serve(variant(t, e.plat, t0.Add(30*day), 18))
	e.clock.set(at.Add(pcs.DefaultRetryInterval))
	if got := e.mustCollateral(t).TCBInfo.TCBEvaluationDataNumber; got != 18 || e.pcs.count("tcb") != n+1 {
		t.Errorf("after the retry interval: eval number %d after %d requests; want 18 after 1", got, e.pcs.count("tcb")-n)
	}
}

func TestProviderWithoutCopyFails(t *testing.T) {
	e := newEnv(t, 4)
	e.pcs.setStatus(http.StatusInternalServerError)
	_, err := e.collateral(t)
	if he, ok := errors.AsType[*pcs.HTTPError](err); !ok || he.StatusCode != http.StatusInternalServerError {
		t.Errorf("Collateral from a failing service: %v; want an *HTTPError with status 500", err)
	}
	e.pcs.setStatus(0)
	_, err = e.prov.Collateral(t.Context(), [6]byte{9, 9, 9, 9, 9, 9}, sgx.PCKCAProcessor)
	if !errors.Is(err, pcs.ErrNotFound) {
		t.Errorf("Collateral for an unknown FMSPC: %v; want ErrNotFound", err)
	}
}

// tamperedDir copies the collateral of dir with a changed tcbEvaluationDataNumber in the
// signed TCB Info.
func tamperedDir(t testing.TB, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "tcb_info.json" {
			b = tamper(t, b)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func tamper(t testing.TB, tcbInfo []byte) []byte {
	t.Helper()
	old := []byte(`"tcbEvaluationDataNumber":17`)
	if !bytes.Contains(tcbInfo, old) {
		t.Fatalf("TCB Info without %s", old)
	}
	return bytes.Replace(tcbInfo, old, []byte(`"tcbEvaluationDataNumber":99`), 1)
}

func TestProviderNeverStoresBadSignature(t *testing.T) {
	e := newEnv(t, 4)
	e.pcs.serve(tamperedDir(t, e.plat.CollateralDir()))
	_, err := e.collateral(t)
	if !errors.Is(err, verify.ErrInvalidSignature) {
		t.Fatalf("Collateral with a forged TCB Info: %v; want ErrInvalidSignature", err)
	}
	if _, err := os.Stat(e.cacheDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the forged set reached the cache directory: %v", err)
	}
	if _, err := e.collateral(t); err == nil {
		t.Error("a later request served the forged set")
	}

	// With a verified copy, a forged refresh leaves it in place.
	e.pcs.serve(e.plat.CollateralDir())
	e.clock.set(t0.Add(2 * time.Hour))
	good := e.mustCollateral(t)
	e.pcs.serve(tamperedDir(t, e.plat.CollateralDir()))
	e.clock.set(t0.Add(31 * day))
	if col := e.mustCollateral(t); !bytes.Equal(col.TCBInfo.Raw(), good.TCBInfo.Raw()) {
		t.Error("a forged refresh replaced the verified copy")
	}
	disk, err := verify.LoadCollateral(e.cacheDir())
	if err != nil || !bytes.Equal(disk.TCBInfo.Raw(), good.TCBInfo.Raw()) {
		t.Errorf("cache directory after a forged refresh: %v; want the verified set", err)
	}
	if !strings.Contains(e.logs.String(), "refusing collateral that does not verify") {
		t.Errorf("log does not report the refusal:\n%s", e.logs)
	}
}

func TestProviderLoadsCacheDirectory(t *testing.T) {
	e := newEnv(t, 4)
	first := e.mustCollateral(t)
	e.pcs.setStatus(http.StatusInternalServerError)
	leftover := filepath.Join(e.dir, ".tmp-00AA55000000-processor-123")
	if err := os.Mkdir(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	n := e.pcs.total()
	e.prov = e.newProvider(t) // a restart
	col := e.mustCollateral(t)
	if !bytes.Equal(col.TCBInfo.Raw(), first.TCBInfo.Raw()) || e.pcs.total() != n {
		t.Errorf("after a restart: same set %v, %d requests; want the cached set and no request",
			bytes.Equal(col.TCBInfo.Raw(), first.TCBInfo.Raw()), e.pcs.total()-n)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover of an interrupted write is still there: %v", err)
	}
}

func TestProviderDiscardsTamperedCacheFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(t *testing.T, dir string)
		want   string
	}{
		{"forged TCB Info", func(t *testing.T, dir string) {
			name := filepath.Join(dir, "tcb_info.json")
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, tamper(t, b), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "signature does not verify"},
		{"QE Identity removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "qe_identity.json")); err != nil {
				t.Fatal(err)
			}
		}, "expected TCB Info and QE Identity"},
		{"PCK CRL issuer chain removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "pck_crl_issuer_chain.pem")); err != nil {
				t.Fatal(err)
			}
		}, "PCK CRL without its issuer chain"},
		{"unparsable CRL", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "root_ca_crl.der"), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "root_ca_crl.der"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4)
			e.mustCollateral(t)
			tc.modify(t, e.cacheDir())
			e.pcs.setStatus(http.StatusInternalServerError)
			e.prov = e.newProvider(t)
			if _, err := e.collateral(t); err == nil {
				t.Fatal("served a tampered cache directory")
			}
			if logs := e.logs.String(); !strings.Contains(logs, "discarding cached collateral that does not verify") || !strings.Contains(logs, tc.want) {
				t.Errorf("log does not report the tampered directory (%q):\n%s", tc.want, logs)
			}
			// The next fetch replaces it, and a restart then serves it without the service.
			e.pcs.setStatus(0)
			e.mustCollateral(t)
			e.pcs.setStatus(http.StatusInternalServerError)
			e.prov = e.newProvider(t)
			e.mustCollateral(t)
		})
	}
}

// TestProviderDiscardsMisplacedCacheDirectory checks that a valid set filed under another
// FMSPC is not served for it.
func TestProviderDiscardsMisplacedCacheDirectory(t *testing.T) {
	e := newEnv(t, 4)
	e.mustCollateral(t)
	other := [6]byte{0x00, 0x90, 0x6E, 0xD5, 0, 0}
	if err := os.Rename(e.cacheDir(), filepath.Join(e.dir, fmt.Sprintf("%X-processor", other))); err != nil {
		t.Fatal(err)
	}
	e.pcs.setStatus(http.StatusInternalServerError)
	e.prov = e.newProvider(t)
	if _, err := e.prov.Collateral(t.Context(), other, sgx.PCKCAProcessor); err == nil {
		t.Errorf("served FMSPC %X's set for FMSPC %X", e.plat.FMSPC(), other)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "TCB Info is for FMSPC 00AA55000000; expected 00906ED50000") {
		t.Errorf("log does not report the misplaced set:\n%s", logs)
	}
}

func TestProviderConcurrentRequestsShareOneFetch(t *testing.T) {
	e := newEnv(t, 4)
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	e.pcs.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/tcb") {
			arrived <- struct{}{}
			<-release
		}
		return false
	})
	const callers = 32
	var started, wg sync.WaitGroup
	started.Add(callers)
	sums := make([][32]byte, callers)
	for i := range callers {
		wg.Go(func() {
			started.Done()
			col := e.mustCollateral(t)
			sums[i] = sha256.Sum256(col.TCBInfo.Raw())
		})
	}
	started.Wait()
	<-arrived
	time.Sleep(100 * time.Millisecond) // let every caller reach the provider while the fetch waits
	close(release)
	wg.Wait()
	if n := e.pcs.count("tcb"); n != 1 {
		t.Errorf("%d concurrent callers caused %d TCB Info requests; want 1", callers, n)
	}
	for i := range sums {
		if sums[i] != sums[0] {
			t.Fatalf("caller %d got another set", i)
		}
	}
}

func TestProviderCallerGivesUp(t *testing.T) {
	e := newEnv(t, 4)
	release := make(chan struct{})
	e.pcs.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/tcb") {
			<-release
		}
		return false
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.prov.Collateral(ctx, e.plat.FMSPC(), sgx.PCKCAProcessor); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Collateral past the caller's deadline: %v; want DeadlineExceeded", err)
	}
	close(release) // the shared fetch goes on and fills the cache
	e.mustCollateral(t)
	if n := e.pcs.count("tcb"); n != 1 {
		t.Errorf("TCB Info requested %d times; want the one shared fetch", n)
	}
}

func TestProviderChecksFMSPCAndCA(t *testing.T) {
	plat := newPlatform(t, sgx.PCKCAPlatform)
	f := newFakePCS(t, 4, plat.CollateralDir())
	c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
	prov, err := pcs.NewProvider(pcs.ProviderConfig{Client: c, Root: plat.Root()}, pcs.WithClock(func() time.Time { return t0.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Collateral(t.Context(), plat.FMSPC(), sgx.PCKCAPlatform); err != nil {
		t.Fatalf("platform CA: %v", err)
	}
	// A service that answers the platform CA's CRL for the processor CA.
	f.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/pckcrl") {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "processor", "platform", 1)
		}
		return false
	})
	if _, err := prov.Collateral(t.Context(), plat.FMSPC(), sgx.PCKCAProcessor); err == nil || !strings.Contains(err.Error(), "expected the PCK processor CA") {
		t.Errorf("processor CA answered with the platform CA's CRL: %v; want a refusal", err)
	}
}

func TestProviderOptionalCRLs(t *testing.T) {
	e := newEnv(t, 3)
	e.pcs.remove("root_ca_crl.der")
	col := e.mustCollateral(t)
	if col.RootCACRL != nil || col.PCKCRL == nil {
		t.Fatalf("without a root CA CRL endpoint: root CRL %v, PCK CRL %v", col.RootCACRL != nil, col.PCKCRL != nil)
	}
	res, err := verify.New(e.plat.Root()).Verify(e.quote(t), col, e.clock.now())
	if err != nil {
		t.Fatalf("Verify without the root CA CRL: %v", err)
	}
	if res.Platform.CRLChecked {
		t.Error("Verify without the root CA CRL: CRLChecked is true")
	}

	// A CRL the cached set had is carried over when the service stops serving it.
	e2 := newEnv(t, 3)
	first := e2.mustCollateral(t)
	e2.pcs.serve(variant(t, e2.plat, t0.Add(30*day), 18))
	e2.pcs.remove("root_ca_crl.der")
	e2.clock.set(t0.Add(31 * day))
	col = e2.mustCollateral(t)
	if col.TCBInfo.TCBEvaluationDataNumber != 18 || col.RootCACRL == nil || !bytes.Equal(col.RootCACRL.Raw, first.RootCACRL.Raw) {
		t.Errorf("refresh without a root CA CRL: eval number %d, root CRL carried over %v", col.TCBInfo.TCBEvaluationDataNumber, col.RootCACRL != nil)
	}
}

func TestProviderKeepsExpiredButAuthentic(t *testing.T) {
	e := newEnv(t, 4)
	e.pcs.serve(variant(t, e.plat, t0.Add(-60*day), 17)) // nextUpdate t0-30d
	col := e.mustCollateral(t)
	if !col.TCBInfo.NextUpdate.Before(e.clock.now()) {
		t.Fatal("expected an expired set")
	}
	if !strings.Contains(e.logs.String(), "outside its validity") {
		t.Errorf("log does not report the expired set:\n%s", e.logs)
	}
	e.mustCollateral(t)
	if n := e.pcs.count("tcb"); n != 1 {
		t.Errorf("TCB Info requested %d times within the retry interval; want 1", n)
	}
}

func TestNewProviderErrors(t *testing.T) {
	_, err := pcs.NewProvider(pcs.ProviderConfig{RetryInterval: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "client: required") || !strings.Contains(err.Error(), "retry interval -1s") {
		t.Errorf("NewProvider with no client and a negative retry interval: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	c := newClient(t, pcs.ClientConfig{BaseURL: pcs.IntelPCSURL})
	if _, err := pcs.NewProvider(pcs.ProviderConfig{Client: c, Dir: file}); err == nil {
		t.Error("NewProvider with a file as cache directory succeeded")
	}
}
