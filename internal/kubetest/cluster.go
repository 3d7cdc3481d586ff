package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Deadlines. Everything runs on loopback; these only bound how long a broken run hangs.
const (
	// ReadyTimeout bounds how long etcd, the API server or the node take to become ready.
	ReadyTimeout = 90 * time.Second
	// stopGrace is how long a component has to exit after SIGTERM before it is killed.
	stopGrace = 10 * time.Second
)

// Cluster is a running Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) and, with [WithNode], one node (containerd and a kubelet), all on loopback,
// owned by one test. Everything is stopped, unmounted and removed when the test ends. Its
// fields must not be changed; its methods are safe for concurrent use.
type Cluster struct {
	// Dir holds the cluster's files: certificates, kubeconfigs, logs (Dir/logs), etcd's data,
	// and the node's state. It is removed when the test ends.
	Dir string
	// Kubeconfig is the path of a kubeconfig of a cluster administrator (group system:masters).
	Kubeconfig string
	// Config is the administrator's client configuration: the API server's URL, the CA and a
	// client certificate.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// CAFile is the PEM file of the cluster's certificate authority, which signed the API
	// server's and the kubelet's serving certificates and every client certificate.
	CAFile string
	// CAPEM is the same certificate in PEM, for a webhook configuration's caBundle.
	CAPEM []byte
	// Node is the node, or nil without [WithNode].
	Node *Node

	tb     testing.TB
	bins   *Binaries
	ca     *authority
	logDir string
	procs  []*process // in start order; stopped in reverse
	// pendingNode is the node from when its containerd started; Node once it is Ready.
	pendingNode *Node
	// unlockNode releases the machine's node lock (see lockNode), or is nil.
	unlockNode func()
	timings    []Timing
	extraAPI   []string
	// etcdArgs and etcdURL restart etcd (etcd.go); procsMu guards procs against a restart
	// while the cluster stops.
	etcdArgs []string
	etcdURL  string
	procsMu  sync.Mutex
}

// Timing is how long one step of [Start] took.
type Timing struct {
	Step string
	Took time.Duration
}

// Option configures [Start].
type Option func(*options)

type options struct {
	node    bool
	apiArgs []string
}

// WithNode also starts a node: containerd and a kubelet registered as [NodeName]. Without it
// (the default) there is only the control plane, and pods stay Pending.
func WithNode() Option { return func(o *options) { o.node = true } }

// WithAPIServerArgs appends flags to kube-apiserver's command line; a later flag overrides an
// earlier one of the same name. The default is none.
func WithAPIServerArgs(args ...string) Option {
	return func(o *options) { o.apiArgs = append(o.apiArgs, args...) }
}

// Start runs a cluster for tb and returns it once the API server is ready, the controller
// manager has set up namespace "default" (a service account and kube-root-ca.crt, so pods
// can be created there) and, with [WithNode], the node is Ready. It skips tb with -short, and
// skips or fails it (see [Require]) when the machine lacks a prerequisite. A cold cache of
// the Kubernetes binaries is filled first ([Build]), which takes minutes. With [WithNode] it
// first waits while another test process runs a node (one node per machine). Start fails tb
// on any error.
func Start(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	SkipShort(tb)
	prereqs := []Prereq{controlPlanePrereqs}
	if o.node {
		prereqs = append(prereqs, nodePrereqs)
	}
	Require(tb, prereqs...)
	bins := Bins(tb)

	// A short directory of its own, not t.TempDir: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{Dir: dir, tb: tb, bins: bins, logDir: filepath.Join(dir, "logs"), extraAPI: o.apiArgs}
	tb.Cleanup(c.cleanup)
	if err := os.Mkdir(c.logDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if o.node {
		if c.unlockNode, err = lockNode(tb.Context(), tb.Logf); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 3*ReadyTimeout)
	defer cancel()
	if err := c.start(ctx, o); err != nil {
		tb.Fatalf("start a Kubernetes cluster: %v", err)
	}
	return c
}

// Timings returns how long each step of [Start] took, in order.
func (c *Cluster) Timings() []Timing { return c.timings }

func (c *Cluster) timed(step string, start time.Time) {
	d := time.Since(start)
	c.timings = append(c.timings, Timing{step, d})
	c.tb.Logf("kubetest: %s in %v", step, d.Round(time.Millisecond))
}

func (c *Cluster) start(ctx context.Context, o options) error {
	t0 := time.Now()
	pki := filepath.Join(c.Dir, "pki")
	if err := os.Mkdir(pki, 0o700); err != nil {
		return err
	}
	ca, err := newAuthority(pki)
	if err != nil {
		return err
	}
	c.ca, c.CAFile, c.CAPEM = ca, ca.certFile, ca.certPEM

	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	etcdPort, etcdPeer, apiPort, kcmPort, schedPort, kubeletPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	apiURL := "https://127.0.0.1:" + strconv.Itoa(apiPort)

	// etcd first; certificates and keys are made while it starts.
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	c.etcdArgs = []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		"--listen-metrics-urls=",
		"--log-level=warn", "--logger=zap",
	}
	c.etcdURL = etcdURL
	etcd, err := startProcess(c.logDir, "etcd", "etcd", c.etcdArgs, minimalEnv())
	if err != nil {
		return err
	}
	c.procs = append(c.procs, etcd)

	var node *Node
	if o.node {
		// containerd starts while the control plane does.
		if node, err = c.startContainerd(ctx); err != nil {
			return err
		}
	}

	issue := func(name string, cn string, orgs []string, ips []net.IP, dns []string) (*keyPair, error) {
		return ca.issue(pki, name, pkix.Name{CommonName: cn, Organization: orgs}, ips, dns)
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	serving, err := issue("apiserver", "kube-apiserver", nil, append(loopback, net.IPv4(10, 0, 0, 1)),
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return err
	}
	admin, err := issue("admin", "kubetest-admin", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	kubeletClient, err := issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	// The controller manager runs every controller with its own identity
	// (--use-service-account-credentials=false, which saves the seconds of making a service
	// account and token per controller), so it needs more than its default role: system:masters.
	kcm, err := issue("controller-manager", "system:kube-controller-manager", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	sched, err := issue("scheduler", "system:kube-scheduler", nil, nil, nil)
	if err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKey(pki)
	if err != nil {
		return err
	}
	kubeconfig := func(name string, kp *keyPair) (string, error) {
		path := filepath.Join(c.Dir, name+".kubeconfig")
		return path, writeKubeconfig(path, apiURL, ca.certPEM, kp)
	}
	if c.Kubeconfig, err = kubeconfig("admin", admin); err != nil {
		return err
	}
	kcmConfig, err := kubeconfig("controller-manager", kcm)
	if err != nil {
		return err
	}
	schedConfig, err := kubeconfig("scheduler", sched)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	c.timed("etcd ready", t0)

	t1 := time.Now()
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file=" + serving.certFile, "--tls-private-key-file=" + serving.keyFile,
		"--client-ca-file=" + ca.certFile,
		"--kubelet-client-certificate=" + kubeletClient.certFile, "--kubelet-client-key=" + kubeletClient.keyFile,
		"--kubelet-certificate-authority=" + ca.certFile,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The "kubernetes" Service's endpoints cannot be a loopback address.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	apiArgs = append(apiArgs, c.extraAPI...)
	api, err := startProcess(c.logDir, "kube-apiserver", c.bins.APIServer, apiArgs, minimalEnv())
	if err != nil {
		return err
	}
	c.procs = append(c.procs, api)

	c.Config = &rest.Config{
		Host: apiURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: ca.certPEM, CertData: admin.certPEM, KeyData: admin.keyPEM,
		},
		QPS: 200, Burst: 400,
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	c.Client = cs
	tlsConfig, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, api, apiURL+"/readyz", tlsConfig); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	c.timed("kube-apiserver ready", t1)

	kcmProc, err := startProcess(c.logDir, "kube-controller-manager", c.bins.ControllerManager, []string{
		"--kubeconfig=" + kcmConfig,
		"--authentication-kubeconfig=" + kcmConfig, "--authorization-kubeconfig=" + kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(kcmPort),
		"--cert-dir=" + filepath.Join(c.Dir, "controller-manager"),
		"--leader-elect=false",
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + ca.certFile,
		"--use-service-account-credentials=false",
		"--cluster-signing-cert-file=", "--cluster-signing-key-file=",
		"--flex-volume-plugin-dir=" + filepath.Join(c.Dir, "controller-manager", "volume-plugins"),
		"--v=1",
	}, minimalEnv())
	if err != nil {
		return err
	}
	c.procs = append(c.procs, kcmProc)
	schedProc, err := startProcess(c.logDir, "kube-scheduler", c.bins.Scheduler, []string{
		"--kubeconfig=" + schedConfig,
		"--authentication-kubeconfig=" + schedConfig, "--authorization-kubeconfig=" + schedConfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(schedPort),
		"--cert-dir=" + filepath.Join(c.Dir, "scheduler"),
		"--leader-elect=false",
		"--v=1",
	}, minimalEnv())
	if err != nil {
		return err
	}
	c.procs = append(c.procs, schedProc)

	if node != nil {
		t2 := time.Now()
		if err := c.startKubelet(ctx, node, kubeletPort, issue); err != nil {
			return err
		}
		c.Node = node
		if err := c.WaitNodeReady(ctx); err != nil {
			return err
		}
		c.timed("node Ready", t2)
	}
	// The controller manager starts its controllers one after another, for a few seconds;
	// until the service-account and root-CA controllers run, no pod can be created.
	t3 := time.Now()
	if err := c.waitNamespaceReady(ctx, "default"); err != nil {
		return err
	}
	c.timed("controllers ready", t3)
	c.timed("cluster started", t0)
	return nil
}

// WaitNodeReady waits until the node is registered and Ready, and its address is set.
func (c *Cluster) WaitNodeReady(ctx context.Context) error {
	if c.Node == nil {
		return errors.New("the cluster has no node (start it WithNode)")
	}
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	var last string
	for {
		if err := c.Node.exited(); err != nil {
			return err
		}
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, getOpts)
		switch {
		case err != nil:
			last = err.Error()
		default:
			if err := c.Node.setAddress(ctx, c.Client, n); err != nil {
				last = err.Error()
				break
			}
			ready, why := nodeReady(n)
			if ready {
				return nil
			}
			last = why
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after %v: %s", NodeName, ReadyTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cleanup stops everything in reverse start order, prints the logs' tails if the test
// failed, and removes Dir.
func (c *Cluster) cleanup() {
	var errs []error
	errs = append(errs, c.stopNode())
	if c.unlockNode != nil {
		c.unlockNode()
	}
	c.procsMu.Lock()
	for i := len(c.procs) - 1; i >= 0; i-- {
		// A control-plane component slow to shut down is no fault of the test: say so only.
		if err := c.procs[i].stop(stopGrace); err != nil {
			c.tb.Logf("kubetest: %v", err)
		}
	}
	c.procsMu.Unlock()
	if err := unmountBelow(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if c.tb.Failed() {
		c.printLogs()
	}
	if err := errors.Join(errs...); err != nil {
		c.tb.Errorf("kubetest: stop the cluster: %v", err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.tb.Errorf("kubetest: remove %s: %v", c.Dir, err)
	}
}

// printLogs logs the last lines of every component's log.
func (c *Cluster) printLogs() {
	ents, err := os.ReadDir(c.logDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		c.tb.Logf("kubetest: last lines of %s:\n%s", e.Name(), tail(filepath.Join(c.logDir, e.Name()), 40))
	}
}

// LogFile returns the path of a component's log: "etcd", "kube-apiserver",
// "kube-controller-manager", "kube-scheduler", "containerd" or "kubelet".
func (c *Cluster) LogFile(component string) string {
	return filepath.Join(c.logDir, component+".log")
}

// ServingCert issues a serving certificate for hosts (IP addresses or DNS names) signed by
// the cluster's CA, for a webhook server the API server calls with caBundle [Cluster.CAPEM].
func (c *Cluster) ServingCert(hosts ...string) (tls.Certificate, error) {
	var ips []net.IP
	var dns []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("a serving certificate needs at least one host")
	}
	dir, err := os.MkdirTemp(c.Dir, "cert-")
	if err != nil {
		return tls.Certificate{}, err
	}
	kp, err := c.ca.issue(dir, "serving", pkix.Name{CommonName: hosts[0]}, ips, dns)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(kp.certPEM, kp.keyPEM)
}

// writeKubeconfig writes a kubeconfig for the API server at url with the client
// certificate kp.
func writeKubeconfig(path, url string, caPEM []byte, kp *keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.certPEM, ClientKeyData: kp.keyPEM}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest"}
	cfg.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*cfg, path)
}

// waitHTTP polls url until it answers 200, p exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, url string, tlsConfig *tls.Config) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	last := "no answer"
	for {
		if err := p.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			var body [512]byte
			n, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body[:n])))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %s", ReadyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The ports are free when it
// returns; another process may take one before it is used, which is unlikely enough here.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// minimalEnv is the environment of every component: PATH and nothing from the test's
// environment (no proxies, no KUBECONFIG).
func minimalEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}
