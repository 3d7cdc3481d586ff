package podman

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Debian's PostgreSQL 15 (packages postgresql-15 and postgresql-client-15).
const (
	pgBin   = "/usr/lib/postgresql/15/bin"
	pgShare = "/usr/share/postgresql/15"
	pgLib   = "/usr/lib/postgresql/15/lib"
	// pgData is the data directory, a VOLUME of the image; pgConf the configuration directory.
	pgData = "/var/lib/postgresql/15/main"
	pgConf = "/etc/postgresql/15/main"
)

// The image's user postgres and its supplementary group ssl-cert, the only way to
// /etc/ssl/private, as Debian's postgresql-common and ssl-cert packages set them up.
const (
	pgUID, pgGID = 104, 104
	sslCertGID   = 103
)

// pgPrereqs are what the PostgreSQL tests need from the machine besides podman.
func pgPrereqs() []e2etest.Prereq {
	const install = "apt-get install postgresql-15 postgresql-client-15"
	return []e2etest.Prereq{
		e2etest.File(pgBin+"/postgres", install),
		e2etest.File(pgBin+"/initdb", install),
		e2etest.File(pgShare+"/timezonesets", install),
		e2etest.Program("psql", install),
		e2etest.Program("ldd", "apt-get install libc-bin"),
		e2etest.Program("setpriv", "apt-get install util-linux"),
	}
}

// pgImage is a PostgreSQL image built from the host's files, and what its tests need to know.
type pgImage struct {
	ref      string // "oci:DIR:NAME"
	port     int
	password string // of the database user postgres
	marker   string // in the configuration, and the value of the setting cloister.marker
}

// pgConfig is the image's postgresql.conf: TLS on loopback, with the server certificate, its key
// and the CA file at paths the Coordinator delivers to, no Unix socket and small memory settings. The custom setting cloister.marker holds marker, so a query shows that the
// server read this file.
func pgConfig(port int, marker string) []byte {
	return fmt.Appendf(nil, `# PostgreSQL configuration of the cloister e2e test (%[2]s)
data_directory = '%[3]s'
hba_file = '%[4]s/pg_hba.conf'
ident_file = '%[4]s/pg_ident.conf'
listen_addresses = '127.0.0.1'
port = %[1]d
unix_socket_directories = ''
max_connections = 20
shared_buffers = 16MB
dynamic_shared_memory_type = posix
ssl = on
ssl_cert_file = '/etc/ssl/certs/db.pem'
ssl_key_file = '/etc/ssl/private/db.key'
ssl_ca_file = '/etc/ssl/certs/cloister-root.pem'
password_encryption = scram-sha-256
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%%m [%%p] '
cloister.marker = '%[2]s'
`, port, marker, pgData, pgConf)
}

// pgHBA admits the user postgres with a password, over TLS on loopback only.
const pgHBA = `# TYPE   DATABASE USER     ADDRESS       METHOD
hostssl  all      postgres 127.0.0.1/32  scram-sha-256
hostssl  all      postgres ::1/128       scram-sha-256
`

// buildPostgres builds an image of Debian's unmodified PostgreSQL 15 from the host's files, as
// a Dockerfile on Debian would: the server binaries and their libraries, its share directory,
// the UTC time zone, users postgres (104) and ssl-cert (103, with postgres as a member), a
// configuration tree /etc/postgresql/15/main owned by postgres, /etc/ssl/private root:ssl-cert
// 0710, and a data directory initialised at build time with initdb (as a non-root host user),
// owned by postgres with mode 0700 and declared as a VOLUME. It runs postgres as the user
// postgres and stops it with SIGINT (a fast shutdown), as the Docker Official Image does.
func buildPostgres(t *testing.T, dir string) pgImage {
	t.Helper()
	img := pgImage{port: freePort(t), password: secretHex()[:32], marker: "PGCONF-" + secretHex()}
	data := initdb(t, dir, img.password)

	bins := []string{pgBin + "/postgres", pgBin + "/initdb", pgBin + "/pg_ctl"}
	base := baseLayer(t, dir)
	app := newLayer(t, dir)
	for _, b := range bins {
		app.hostFile(b, b)
	}
	// A shell, as Debian images have: COPY … FROM PROGRAM runs /bin/sh.
	app.hostFile("/usr/bin/dash", "/bin/dash")
	app.symlink("/usr/bin/sh", "dash")
	app.hostTree(pgShare, pgShare)
	// The server checks that its library directory exists; plpgsql is in every database.
	for _, lib := range []string{"plpgsql.so", "dict_snowball.so"} {
		app.hostFile(pgLib+"/"+lib, pgLib+"/"+lib)
	}
	app.hostFile("/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/UTC")
	app.symlink("/usr/share/zoneinfo/Etc/UTC", "../UTC")
	app.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"+
		fmt.Sprintf("postgres:x:%d:%d:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/sh\n", pgUID, pgGID)+
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), 0o644)
	app.file("/etc/group", []byte("root:x:0:\n"+fmt.Sprintf("ssl-cert:x:%d:postgres\npostgres:x:%d:\n", sslCertGID, pgGID)+
		"nogroup:x:65534:\n"), 0o644)
	app.dir("/etc/ssl/certs", 0o755)
	app.ownedDir("/etc/ssl/private", 0o710, 0, sslCertGID)
	app.ownedDir("/etc/postgresql", 0o755, pgUID, pgGID)
	app.ownedDir("/etc/postgresql/15", 0o755, pgUID, pgGID)
	app.ownedDir(pgConf, 0o755, pgUID, pgGID)
	app.ownedFile(pgConf+"/postgresql.conf", pgConfig(img.port, img.marker), 0o644, pgUID, pgGID)
	app.ownedFile(pgConf+"/pg_hba.conf", []byte(pgHBA), 0o640, pgUID, pgGID)
	app.ownedFile(pgConf+"/pg_ident.conf", []byte("# MAPNAME SYSTEM-USERNAME PG-USERNAME\n"), 0o640, pgUID, pgGID)
	app.ownedDir("/var/run/postgresql", 0o2775, pgUID, pgGID)
	app.ownedDir("/var/lib/postgresql", 0o755, pgUID, pgGID)
	app.ownedDir("/var/lib/postgresql/15", 0o755, pgUID, pgGID)
	app.ownedTree(pgData, data, pgUID, pgGID)

	img.ref = writeImageWith(t, filepath.Join(dir, "in"), "postgres", imageConfig{
		entrypoint: []string{pgBin + "/postgres", "-D", pgData, "-c", "config_file=" + pgConf + "/postgresql.conf"},
		env:        []string{"PATH=" + pgBin + ":/usr/bin:/bin", "LANG=C"},
		user:       "postgres",
		workdir:    "/var/lib/postgresql",
		createdBy:  []string{"base", "libraries", "postgresql-15, initdb"},
	}, func(c *v1.Config) {
		c.Volumes = map[string]struct{}{pgData: {}}
		c.StopSignal = "SIGINT"
	}, base, libsLayer(t, dir, bins...), app.done())
	return img
}

// initdb initialises a data directory below dir as Debian's pg_createcluster does (UTF-8, C
// locale, the superuser postgres with password and SCRAM authentication), with 1 MiB WAL
// segments, as a non-root user (nobody, when the test runs as root: initdb refuses root), and
// returns its path. postgresql.conf and pg_hba.conf live in /etc/postgresql, so initdb's own
// copies are removed.
func initdb(t *testing.T, dir, password string) string {
	t.Helper()
	work := filepath.Join(dir, "initdb")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	pwfile := filepath.Join(work, "pwfile")
	eng := []string{pgBin + "/initdb", "-D", filepath.Join(work, "main"), "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--wal-segsize", "1", "--no-sync", "--no-instructions"}
	if os.Geteuid() == 0 {
		// nobody reaches the directory: the test's temporary directories are 0700.
		for _, d := range []string{work, dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, map[bool]os.FileMode{true: 0o777, false: 0o755}[d == work]); err != nil {
				t.Fatal(err)
			}
		}
		eng = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, eng...)
	}
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	cmd := exec.CommandContext(t.Context(), eng[0], eng[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "TZ=UTC"}
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(eng, " "), err, out)
	}
	os.Remove(pwfile)
	main := filepath.Join(work, "main")
	for _, f := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		if err := os.Remove(filepath.Join(main, f)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("initdb took %s", time.Since(began).Round(time.Millisecond))
	return main
}

// psql runs the host's psql as the user postgres against the server on port, with TLS
// required and the server's certificate verified for the name db against the CA file root
// only (sslmode=verify-full), and returns what the query printed (unaligned, tuples only).
func psql(t *testing.T, root string, port int, password, query string) (string, error) {
	t.Helper()
	conn := fmt.Sprintf("host=db hostaddr=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s connect_timeout=3", port, root)
	cmd := exec.CommandContext(t.Context(), "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", query)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=" + t.TempDir(), "PGPASSWORD=" + password}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("psql -c %q: %w: %s", query, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// waitPsql waits until query succeeds through psql against the server in c and returns its
// output. It fails at once if c exits.
func waitPsql(t *testing.T, timeout time.Duration, what, root string, img pgImage, c *container, query string) string {
	t.Helper()
	var out string
	e2etest.WaitFor(t, timeout, what, func() (bool, string) {
		var err error
		if out, err = psql(t, root, img.port, img.password, query); err == nil {
			return true, ""
		}
		if !c.running() {
			t.Fatalf("%s: the container exited:\n%s", what, tail(c.logs(), 6000))
		}
		return false, err.Error()
	})
	return out
}

// selfSigned writes a self-signed certificate for the DNS name db and its key to dir, as an
// operator would mount them into the original image: the certificate (also the CA file) 0644,
// the key root:ssl-cert 0640 (when the test runs as root), so postgres reads it through its
// supplementary group only. It returns their paths.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "db"}, DNSNames: []string{"db"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "db.pem"), filepath.Join(dir, "db.key")
	e2etest.WriteFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	e2etest.WriteFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o640)
	if os.Geteuid() == 0 {
		if err := os.Chown(key, 0, sslCertGID); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// loadOriginal loads the unconverted image src ("oci:DIR:NAME") into podman as
// localhost/cloister-e2e/NAME and returns that reference.
func loadOriginal(t *testing.T, eng *engine, src, dir, name string) string {
	t.Helper()
	ref := "localhost/cloister-e2e/" + name + ":" + eng.run
	archive := filepath.Join(dir, name+".tar")
	if err := tarball.WriteToFile(archive, mustTag(t, ref), layoutImage(t, src)); err != nil {
		t.Fatal(err)
	}
	eng.load(archive, ref)
	return ref
}

// newVolume creates a podman named volume, removed when the test ends, and returns its name.
func (e *engine) newVolume(name string) string {
	e.t.Helper()
	v := "cloister-e2e-" + name + "-" + e.run
	e.must(time.Minute, "volume", "create", v)
	e.t.Cleanup(func() { e.podman(time.Minute, "volume", "rm", "-f", v) })
	return v
}

// runArgs starts a container with podman run -d on the host network with the extra arguments
// args (before the image), and removes it when the test ends.
func (e *engine) runArgs(name, image string, args ...string) *container {
	e.t.Helper()
	c := &container{e: e, name: "cloister-e2e-" + name + "-" + e.run}
	e.must(time.Minute, append(append([]string{"run", "-d", "--name", c.name, "--network", "host"}, args...), image)...)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("log of container %s:\n%s", c.name, tail(c.logs(), 6000))
		}
		e.podman(time.Minute, "rm", "-f", "-t", "2", c.name)
	})
	return c
}

// stop stops the container with podman stop (its stop signal, then SIGKILL after timeout) and
// returns its exit code.
func (c *container) stop(timeout time.Duration) int {
	c.e.t.Helper()
	c.e.must(timeout+30*time.Second, "stop", "-t", fmt.Sprint(int(timeout.Seconds())), c.name)
	out := c.e.must(30*time.Second, "inspect", "--format", "{{.State.ExitCode}}", c.name)
	var code int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &code); err != nil {
		c.e.t.Fatalf("exit code of %s: %q: %v", c.name, out, err)
	}
	return code
}

// runOriginalPostgres runs the unconverted image on a new named volume with a self-signed
// certificate mounted, writes and reads rows, stops it (a clean shutdown), starts a second
// container on the same volume, which reads them back, and returns how long the first and
// second started took from podman run to the first query.
func runOriginalPostgres(t *testing.T, eng *engine, img pgImage, dir string) (took [2]time.Duration, identity string) {
	t.Helper()
	ref := loadOriginal(t, eng, img.ref, dir, "postgres-original")
	cert, key := selfSigned(t, filepath.Join(dir, "original-tls"))
	vol := eng.newVolume("pg-original")
	for i, name := range []string{"pg-original-1", "pg-original-2"} {
		began := time.Now()
		c := eng.runArgs(name, ref, "-v", vol+":"+pgData, "-v", cert+":/etc/ssl/certs/db.pem:ro",
			"-v", cert+":/etc/ssl/certs/cloister-root.pem:ro", "-v", key+":/etc/ssl/private/db.key:ro")
		marker := waitPsql(t, 60*time.Second, "the original PostgreSQL to answer", cert, img, c, "SHOW cloister.marker")
		took[i] = time.Since(began).Round(time.Millisecond)
		if marker != img.marker {
			t.Fatalf("SHOW cloister.marker = %q; want %q", marker, img.marker)
		}
		if i == 0 {
			identity = pgIdentity(t, cert, img)
			if _, err := psql(t, cert, img.port, img.password, "CREATE TABLE original (n int); INSERT INTO original VALUES (1), (2), (3)"); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := psql(t, cert, img.port, img.password, "SELECT sum(n) FROM original"); err != nil || got != "6" {
			t.Fatalf("container %d: sum = %q, %v; want 6", i+1, got, err)
		}
		if code := c.stop(30 * time.Second); code != 0 {
			t.Fatalf("the original PostgreSQL exited with %d after podman stop; want 0\n%s", code, c.logs())
		}
		if logs := c.logs(); !strings.Contains(logs, "database system is shut down") {
			t.Fatalf("the original PostgreSQL did not log a clean shutdown:\n%s", logs)
		}
		eng.must(time.Minute, "rm", c.name)
	}
	return took, identity
}

// pgWorkload is the deployment manifest's workload of the converted PostgreSQL image.
const pgWorkload = "db"

// Secret names of the converted PostgreSQL image: the protected configuration's key (made by
// the converter, uploaded by the operator) and the encrypted volume's (made by the
// Coordinator).
const (
	pgFilesKey  = "pg_files_key"
	pgVolumeKey = "pg_volume_key"
)

// launchArgs are the podman run arguments of a confidential container of workload, with the
// simulated platform simDir (the Coordinator's, or a copy) mounted read-only. The instance ID is
// left to the launcher.
func launchArgs(simDir string, coord *coordinator, workload string) []string {
	return []string{"-v", simDir + ":/sim:ro", "-e", "CLOISTER_SIM_DIR=/sim",
		"-e", "CLOISTER_COORDINATOR=" + coord.Addrs.Mesh, "-e", "CLOISTER_WORKLOAD=" + workload, "-e", "CLOISTER_RETRY_TIMEOUT=60s"}
}

// activations returns the Coordinator's activation count of workload.
func activations(t *testing.T, coord *coordinator, workload string) uint64 {
	t.Helper()
	st, err := client.New(coord.Addrs.Client, coord.root).Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st.Activations[workload]
}

// setManifest sets the deployment manifest doc and uploads the user-defined secrets upload (if
// any) as the user operator, whom it adds with a role that may write them.
func setManifest(t *testing.T, env *e2etest.Env, coord *coordinator, doc map[string]any, upload map[string][]byte) {
	t.Helper()
	var operator *e2etest.User
	names := slices.Sorted(maps.Keys(upload))
	if len(upload) > 0 {
		operator = env.NewUser(t, "operator")
		doc["users"] = map[string]any{"operator": map[string]any{"certificate": operator.CertPEM, "roles": []string{"uploader"}}}
		doc["roles"] = map[string]any{"uploader": map[string]any{"resource": "secrets", "names": names, "actions": []string{"write"}}}
	}
	m, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(coord.Addrs.Client, coord.root).SetManifest(t.Context(), m); err != nil {
		t.Fatalf("set manifest: %v\n%s", err, m)
	}
	if operator == nil {
		return
	}
	op := client.New(coord.Addrs.Client, coord.root, client.WithCertificate(operator.TLS))
	if err := op.SetSecrets(t.Context(), upload); err != nil {
		t.Fatalf("upload %v: %v", names, err)
	}
}

// manifestFromEntry returns a deployment manifest made of the manifest entry convert printed
// (packages, workloads, secrets), as a user pastes it, with the workload renamed to name and
// changed by edit.
func manifestFromEntry(t *testing.T, conv *convertOutput, name string, edit func(w map[string]any)) map[string]any {
	t.Helper()
	b, err := json.Marshal(conv.ManifestEntry)
	if err != nil {
		t.Fatal(err)
	}
	var entry map[string]any
	if err := json.Unmarshal(b, &entry); err != nil {
		t.Fatal(err)
	}
	workloads := mapOf(entry["workloads"])
	if len(workloads) != 1 {
		t.Fatalf("the printed manifest entry has %d workloads; want 1: %s", len(workloads), b)
	}
	var w map[string]any
	for _, v := range workloads {
		w = mapOf(v)
	}
	edit(w)
	entry["workloads"] = map[string]any{name: w}
	return entry
}

// containerPaths are where podman keeps a container's files on the host: its writable layer
// (the overlay upper directory) and its userdata directory (configuration, /dev/shm mount
// point).
func (c *container) paths() (upper, static string) {
	c.e.t.Helper()
	out := c.e.must(30*time.Second, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}\n{{.StaticDir}}", c.name)
	f := strings.Fields(out)
	if len(f) != 2 {
		c.e.t.Fatalf("podman inspect %s: upper and static directories: %q", c.name, out)
	}
	return f[0], f[1]
}

// volumePath returns the host directory of the named volume vol.
func (e *engine) volumePath(vol string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must(30*time.Second, "volume", "inspect", "--format", "{{.Mountpoint}}", vol))
}

// memoryUsed returns the bytes used on the file system at dir (statfs).
func memoryUsed(t *testing.T, dir string) int64 {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(fs.Blocks-fs.Bfree) * fs.Bsize
}

// pemKey is in every PEM private key ("-----BEGIN PRIVATE KEY-----", "EC PRIVATE KEY", …): a
// scan for it in what a container wrote finds any key it wrote. (Images hold it: libcrypto
// has the string.)
var pemKey = []byte("PRIVATE KEY-----")

// TestPostgresEncryptedVolume runs Debian's unmodified PostgreSQL 15 as a confidential container
// whose data directory, initialised at build time and a VOLUME of the image, is an encrypted
// volume seeded from the image on first start, and whose configuration is protected.
//
// The image is built from the host's files and first run unconverted: it works, and gives the
// start-up time and the server's process identity to compare with. Converting it with --protect
// on the data directory is refused, naming --encrypted-volume. Converted with --protect
// /etc/postgresql and --encrypted-volume on the data directory, it runs on a new named volume
// with its TLS certificate and key from the Coordinator; the key's link in /etc/ssl/private
// (root:ssl-cert 0710) is reached only through the supplementary group ssl-cert, and the server
// runs with the user, groups and HOME runc gives the original image. psql verifies the server
// against the deployment root (sslmode=verify-full) and writes rows; the launcher warns that the
// volume is not encrypted in simulation and takes the container ID as the instance ID. After a
// clean shutdown (podman stop) and podman rm, a new container on the same volume does not seed
// it again and reads the rows back. After each stop, neither the delivered key nor the protected
// configuration is anywhere in the container's layer, its userdata directory or the volume. (In
// simulation the volume holds the rows in plaintext, which the launcher's warning says; on SGX
// hardware Gramine encrypts it. The rows are not looked for.)
func TestPostgresEncryptedVolume(t *testing.T) {
	eng := newEngine(t, pgPrereqs()...)
	env := e2etest.New(t)
	dir := t.TempDir()
	last := time.Now()
	step := func(what string) {
		t.Logf("%s took %s", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	img := buildPostgres(t, dir)
	step("building the image")
	original, originalID := runOriginalPostgres(t, eng, img, dir)
	step("running the original image twice")
	t.Logf("the original image's server runs as %s", originalID)
	coord := startCoordinator(t, env)

	signKey, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "pg-files.key")
	keygen(t, signKey)
	common := []string{"--sign-key", signKey, "--isvprodid", "7", "--key-name", pgFilesKey, "--key-file", keyFile}

	// --protect on the data directory, a VOLUME, is refused with the option to use instead.
	for _, p := range []string{pgData, "/var/lib/postgresql"} {
		args := append([]string{"image", "convert", img.ref, "docker-archive:" + filepath.Join(dir, "refused.tar") + ":localhost/refused:1",
			"--launcher", e2etest.Bins(t).Launcher, "--protect", p}, common...)
		out, errOut, err := cloister(t, args...)
		if err == nil || !contains(errOut, p, "--encrypted-volume") {
			t.Errorf("convert --protect %s: err %v; want a refusal naming --encrypted-volume\n%s%s", p, err, out, errOut)
		} else {
			t.Logf("convert --protect %s is refused: %s", p, strings.TrimSpace(errOut))
		}
	}

	step("two refused conversions")
	ref := "localhost/cloister-e2e/postgres:" + eng.run
	archive := filepath.Join(dir, "postgres.tar")
	began := time.Now()
	conv := convert(t, img.ref, "docker-archive:"+archive+":"+ref, append(common,
		"--protect", "/etc/postgresql", "--encrypted-volume", pgData, "--volume-key-name", pgVolumeKey)...)
	t.Logf("convert took %s: %d trusted files (%d bytes), %d protected files", time.Since(began).Round(time.Millisecond), conv.Files, conv.Bytes, len(conv.ProtectedFiles))
	if len(conv.ProtectedFiles) != 3 {
		t.Errorf("protected %d files; want postgresql.conf, pg_hba.conf and pg_ident.conf: %+v", len(conv.ProtectedFiles), conv.ProtectedFiles)
	}
	checkPgReport(t, conv)
	if found := scanBlobs(t, archive, map[string][]byte{"protected configuration": []byte(img.marker)}); len(found) > 0 {
		t.Fatalf("found in the converted image: %v", found)
	}
	eng.load(archive, ref)
	step("converting, scanning and loading the image")

	doc := manifestFromEntry(t, conv, pgWorkload, func(w map[string]any) {
		w["tls"] = map[string]any{"dns": []string{"db"}, "ip": []string{"127.0.0.1"}}
		w["files"] = map[string]string{
			"/etc/ssl/certs/db.pem":            "{{.Workload.Chain}}",
			"/etc/ssl/private/db.key":          "{{.Workload.Key}}",
			"/etc/ssl/certs/cloister-root.pem": "{{.CA.Root}}",
		}
	})
	setManifest(t, env, coord, doc, map[string][]byte{pgFilesKey: readFile(t, keyFile)})
	rootFile := filepath.Join(dir, "deployment-root.pem")
	e2etest.WriteFile(t, rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: coord.root.Raw}), 0o644)

	vol := eng.newVolume("pg")
	rows := "ROWS-" + secretHex()[:16]
	secrets := map[string][]byte{"protected configuration": []byte(img.marker), "private key": pemKey}
	var took [2]time.Duration
	var shmUsed int64
	for start := 1; start <= 2; start++ {
		began := time.Now()
		c := eng.runArgs(fmt.Sprintf("pg-%d", start), ref, append(launchArgs(coord.Platform.Dir(), coord, pgWorkload),
			"-v", vol+":"+pgData, "--shm-size=128m")...)
		marker := waitPsql(t, 90*time.Second, fmt.Sprintf("the converted PostgreSQL to answer (container %d)", start), rootFile, img, c, "SHOW cloister.marker")
		took[start-1] = time.Since(began).Round(time.Millisecond)
		if marker != img.marker {
			t.Errorf("SHOW cloister.marker = %q; want %q, from the protected postgresql.conf", marker, img.marker)
		}
		if got, err := psql(t, rootFile, img.port, img.password, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); err != nil || !strings.HasPrefix(got, "t|TLS") {
			t.Errorf("the connection's TLS: %q, %v; want ssl t", got, err)
		}
		if id := pgIdentity(t, rootFile, img); id != originalID {
			t.Errorf("container %d: the server's process identity is %q; want the original image's %q", start, id, originalID)
		}
		if start == 1 {
			if _, err := psql(t, rootFile, img.port, img.password, fmt.Sprintf("CREATE TABLE confidential (n int, s text); INSERT INTO confidential SELECT g, '%s' FROM generate_series(1, 1000) g", rows)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := psql(t, rootFile, img.port, img.password, "SELECT count(*), sum(n), min(s) FROM confidential"); err != nil || got != "1000|500500|"+rows {
			t.Fatalf("container %d: the rows: %q, %v; want 1000|500500|%s", start, got, err, rows)
		}
		upper, static := c.paths()
		if os.Geteuid() == 0 {
			// While the container runs, its /dev/shm (a tmpfs podman mounts at userdata/shm on
			// the host) holds the delivered key: the scans below look for its bytes after stop.
			shm := filepath.Join(static, "shm")
			shmUsed = max(shmUsed, memoryUsed(t, shm))
			key, err := os.ReadFile(filepath.Join(shm, "cloister-delivered/etc/ssl/private/db.key"))
			if err != nil || !bytes.Contains(key, pemKey) {
				t.Fatalf("while PostgreSQL runs, its /dev/shm holds no delivered key: %v", err)
			}
			secrets[fmt.Sprintf("delivered key %d", start)] = key
			if found := scanBlobs(t, shm, secrets); !hasFinding(found, fmt.Sprintf("delivered key %d", start)) {
				t.Fatalf("the scan does not find the delivered key in /dev/shm, where it is; it could not catch a leak (found %v)", found)
			}
		}
		logs := c.logs()
		checkPgLaunch(t, start, logs, env, c)
		for l := range strings.Lines(logs) {
			if contains(l, "level=INFO", "took=") {
				t.Logf("container %d, launcher: %s", start, strings.TrimSpace(l))
			}
		}
		if code := c.stop(30 * time.Second); code != 0 {
			t.Errorf("container %d exited with %d after podman stop; want 0\n%s", start, code, tail(c.logs(), 3000))
		}
		if logs := c.logs(); !strings.Contains(logs, "database system is shut down") {
			t.Errorf("container %d: PostgreSQL did not log a clean shutdown:\n%s", start, tail(logs, 3000))
		}
		if os.Geteuid() == 0 {
			for _, d := range []string{upper, static, eng.volumePath(vol)} {
				if found := scanBlobs(t, d, secrets); len(found) > 0 {
					t.Errorf("after container %d stopped: found %v", start, found)
				}
			}
		}
		eng.must(time.Minute, "rm", c.name)
		if got := activations(t, coord, pgWorkload); got != uint64(start) {
			t.Errorf("after container %d: %d activations; want %d", start, got, start)
		}
		step(fmt.Sprintf("container %d", start))
	}
	t.Logf("memory-backed storage: the report says %d bytes (%.1f KiB) for the protected files' plaintext; /dev/shm of the running container used %.1f MiB (--shm-size=128m)",
		conv.MemoryBytes, float64(conv.MemoryBytes)/1024, float64(shmUsed)/(1<<20))
	t.Logf("start-up to the first successful psql: original image %s on a new volume, %s on its data; converted %s seeding the encrypted volume, %s on its data",
		original[0], original[1], took[0], took[1])
	coord.Stop(t)
}

// pgIdentityQuery prints the process identity of the server's processes, as a child of a
// backend sees it: HOME, the Uid, Gid and Groups lines of /proc/self/status, and which of the
// server's directories it owns, sorted and joined with ";".
const pgIdentityQuery = `CREATE TEMP TABLE ident (line text); ` +
	`COPY ident FROM PROGRAM 'echo "HOME=$HOME"; while read -r l; do case "$l" in Uid:*|Gid:*|Groups:*) echo $l;; esac; done < /proc/self/status; ` +
	`for d in /etc/postgresql /etc/postgresql/15/main /var/run/postgresql ` + pgData + `; do [ -O "$d" ] && echo "owns $d"; done; exit 0'; ` +
	`SELECT string_agg(line, ';' ORDER BY line) FROM ident`

// pgIdentity returns what pgIdentityQuery prints.
func pgIdentity(t *testing.T, root string, img pgImage) string {
	t.Helper()
	got, err := psql(t, root, img.port, img.password, pgIdentityQuery)
	if err != nil {
		t.Fatalf("the server's process identity: %v", err)
	}
	return got
}

// checkPgReport checks what convert reported about the PostgreSQL image: the data directory
// as an encrypted volume seeded from the image, with its owner and mode, and not among the
// unmeasured directories; the memory its protected files need; the volume key in the manifest
// entry, as a secret the Coordinator generates.
func checkPgReport(t *testing.T, conv *convertOutput) {
	t.Helper()
	report, _ := json.MarshalIndent(conv, "", "  ")
	if conv.MemoryBytes <= 0 {
		t.Errorf("convert reported memory_bytes %d; want the protected files' plaintext size in memory\n%s", conv.MemoryBytes, report)
	}
	if len(conv.Volumes) != 1 {
		t.Fatalf("convert reported %d encrypted volumes; want %s\n%s", len(conv.Volumes), pgData, report)
	}
	v := conv.Volumes[0]
	if v.Path != pgData || v.Key != pgVolumeKey || !v.Seed || v.SeedFiles < 900 || v.Mode != "0700" || v.UID != pgUID || v.GID != pgGID {
		t.Errorf("convert reported the volume %+v; want %s with key %s, seeded with initdb's files, 0700 %d:%d", v, pgData, pgVolumeKey, pgUID, pgGID)
	}
	for _, u := range conv.Unmeasured {
		if u.Path == pgData {
			t.Errorf("the encrypted volume %s is also reported unmeasured: %+v", pgData, u)
		}
	}
	for name, w := range conv.ManifestEntry.Workloads {
		if !slices.Contains(w.FileKeys, pgFilesKey) || !slices.Contains(w.FileKeys, pgVolumeKey) {
			t.Errorf("the printed workload %s has file_keys %v; want %s and %s", name, w.FileKeys, pgFilesKey, pgVolumeKey)
		}
	}
	if s := conv.ManifestEntry.Secrets[pgVolumeKey]; s.Type != "symmetric-key" || s.Size != 256 {
		t.Errorf("the printed secret %s is %+v; want a 256-bit symmetric-key the Coordinator generates", pgVolumeKey, s)
	}
	t.Logf("convert: volume %s seeded from %d files (%d bytes) at %s; warnings %q", v.Path, v.SeedFiles, v.SeedBytes, v.SeedPath, conv.Warnings)
}

// mapOf returns v as a JSON object, or nil.
func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// checkPgLaunch checks the launcher's log of start (1 or 2) of the converted PostgreSQL in c:
// the simulation warning that the volume is not encrypted, the seeding on the first start only,
// and the container's ID as the instance ID, in the Coordinator's log too.
func checkPgLaunch(t *testing.T, start int, logs string, env *e2etest.Env, c *container) {
	t.Helper()
	if !contains(logs, "encrypted volume "+pgData+" is NOT encrypted", "SIMULATION") {
		t.Errorf("container %d: no warning that %s is not encrypted in simulation:\n%s", start, pgData, tail(logs, 3000))
	}
	seeded := strings.Contains(logs, "seeded encrypted volume "+pgData+" from the image")
	if start == 1 && !seeded {
		t.Errorf("container 1: the launcher did not log seeding the empty volume:\n%s", tail(logs, 3000))
	}
	if start > 1 && (seeded || !strings.Contains(logs, "holds data of earlier runs")) {
		t.Errorf("container %d: want the volume used as it is, not seeded again:\n%s", start, tail(logs, 3000))
	}
	id := strings.TrimSpace(c.e.must(30*time.Second, "inspect", "--format", "{{.Id}}", c.name))
	if !strings.Contains(logs, "using the container ID "+id) {
		t.Errorf("container %d: the launcher did not take the container ID %s as its instance ID:\n%s", start, id, tail(logs, 3000))
	}
	var coordLog strings.Builder
	for _, l := range env.Logs() {
		coordLog.WriteString(l.Out.String())
	}
	if !strings.Contains(coordLog.String(), `"instance":"`+id+`"`) {
		t.Errorf("container %d: the Coordinator logged no activation of instance %s", start, id)
	}
}

// TestPostgresVolumeUnmeasured converts the PostgreSQL image with its configuration protected
// and nothing said about its data directory: the image's VOLUME is reported unmeasured (with
// initdb's files, which stay in the image for podman to copy into a new volume), so after a
// first container wrote to the volume and was removed, a second one on the same volume is not
// refused for changed trusted files, and reads the rows back. Nothing here encrypts the data:
// that is --encrypted-volume's job (TestPostgresEncryptedVolume).
func TestPostgresVolumeUnmeasured(t *testing.T) {
	eng := newEngine(t, pgPrereqs()...)
	env := e2etest.New(t)
	dir := t.TempDir()
	img := buildPostgres(t, dir)
	coord := startCoordinator(t, env)

	signKey, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "pg-files.key")
	keygen(t, signKey)
	ref := "localhost/cloister-e2e/postgres-unmeasured:" + eng.run
	archive := filepath.Join(dir, "postgres-unmeasured.tar")
	conv := convert(t, img.ref, "docker-archive:"+archive+":"+ref, "--sign-key", signKey, "--isvprodid", "9",
		"--protect", "/etc/postgresql", "--key-name", pgFilesKey, "--key-file", keyFile)
	if len(conv.Unmeasured) != 1 || conv.Unmeasured[0].Path != pgData || conv.Unmeasured[0].Reason != "VOLUME" || conv.Unmeasured[0].Files < 900 {
		t.Fatalf("convert reported unmeasured %+v; want %s, VOLUME, with initdb's files", conv.Unmeasured, pgData)
	}
	if !slices.Contains(conv.Exclude, pgData+"/") || len(conv.Volumes) != 0 {
		t.Errorf("convert reported exclude %q and volumes %+v; want %s/ excluded and no encrypted volume", conv.Exclude, conv.Volumes, pgData)
	}
	t.Logf("convert: %s unmeasured (%s, %d files); warnings %q", conv.Unmeasured[0].Path, conv.Unmeasured[0].Reason, conv.Unmeasured[0].Files, conv.Warnings)
	eng.load(archive, ref)

	doc := manifestFromEntry(t, conv, pgWorkload, func(w map[string]any) {
		w["tls"] = map[string]any{"dns": []string{"db"}}
		w["files"] = map[string]string{
			"/etc/ssl/certs/db.pem":            "{{.Workload.Chain}}",
			"/etc/ssl/private/db.key":          "{{.Workload.Key}}",
			"/etc/ssl/certs/cloister-root.pem": "{{.CA.Root}}",
		}
	})
	setManifest(t, env, coord, doc, map[string][]byte{pgFilesKey: readFile(t, keyFile)})
	rootFile := filepath.Join(dir, "deployment-root.pem")
	e2etest.WriteFile(t, rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: coord.root.Raw}), 0o644)

	vol := eng.newVolume("pg-unmeasured")
	for start := 1; start <= 2; start++ {
		c := eng.runArgs(fmt.Sprintf("pg-unmeasured-%d", start), ref, append(launchArgs(coord.Platform.Dir(), coord, pgWorkload),
			"-v", vol+":"+pgData, "--shm-size=128m")...)
		waitPsql(t, 90*time.Second, fmt.Sprintf("container %d to answer", start), rootFile, img, c, "SELECT 1")
		if start == 1 {
			if _, err := psql(t, rootFile, img.port, img.password, "CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 100)"); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := psql(t, rootFile, img.port, img.password, "SELECT sum(n) FROM kept"); err != nil || got != "5050" {
			t.Fatalf("container %d: sum = %q, %v; want 5050", start, got, err)
		}
		if code := c.stop(30 * time.Second); code != 0 || !strings.Contains(c.logs(), "database system is shut down") {
			t.Fatalf("container %d: exit %d after podman stop; want 0 and a clean shutdown\n%s", start, code, tail(c.logs(), 3000))
		}
		eng.must(time.Minute, "rm", c.name)
	}
	coord.Stop(t)
}
