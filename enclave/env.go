package enclave

// The contract between the converter (package image), which lays out a confidential image and
// writes its Gramine manifest, the launcher (package launcher), which reads that layout and its
// settings, and the deployment manifest's checks (package manifest), which keep workloads off
// both. It is defined here, once, because all three import this package and none imports the
// others.

// Paths inside every converted image.
const (
	// ReservedDir holds the converter's files: the launcher, the enclave manifest and the
	// Gramine manifest. Nothing else of an image may live there, and no delivered file may be
	// written there.
	ReservedDir = "/cloister"
	// LauncherPath is the launcher binary, the image's entrypoint.
	LauncherPath = ReservedDir + "/launch"
	// ManifestPath is the signed enclave manifest; the launcher reads it unless
	// EnvEnclaveManifest says otherwise.
	ManifestPath = ReservedDir + "/enclave.json"
	// GramineManifestPath is the Gramine manifest, to be signed with gramine-sgx-sign.
	GramineManifestPath = ReservedDir + "/gramine.manifest"
	// ProtectedDir is where the launcher puts the plaintext of protected files: memory-backed
	// storage only (a tmpfs; inside Gramine the Gramine manifest mounts an in-enclave tmpfs
	// there).
	ProtectedDir = "/dev/shm/cloister-protected"
	// DeliveredDir is where the launcher writes the files the Coordinator delivers (the
	// workload's key among them): memory-backed storage only, as ProtectedDir. Each delivered
	// path outside a tmpfs becomes a symbolic link into it, so no delivered secret is ever
	// written to the container's layer.
	DeliveredDir = "/dev/shm/cloister-delivered"
	// SeedDir holds, at SeedDir followed by its path, the image content of each seeded
	// encrypted volume ([Volume.Seed]): trusted files the launcher copies into the volume on
	// its first start.
	SeedDir = ReservedDir + "/seed"
)

// Environment variables that configure the launcher. They come from the host and are not
// trusted: they choose where to connect, not whom to trust, which is in the signed enclave
// manifest. Every name starts with EnvPrefix, which the deployment manifest may not use.
const (
	EnvPrefix          = "CLOISTER_"
	EnvCoordinator     = EnvPrefix + "COORDINATOR"      // host:port of the Coordinator's workload API
	EnvWorkload        = EnvPrefix + "WORKLOAD"         // workload name in the deployment manifest
	EnvInstance        = EnvPrefix + "INSTANCE"         // instance ID; default: the container ID, else random
	EnvTEE             = EnvPrefix + "TEE"              // TEEGramine or TEESimulation; default: detected
	EnvSimDir          = EnvPrefix + "SIM_DIR"          // simulated SGX platform directory
	EnvEnclaveManifest = EnvPrefix + "ENCLAVE_MANIFEST" // default ManifestPath
	EnvRetryTimeout    = EnvPrefix + "RETRY_TIMEOUT"    // how long to retry activation; default 2m
	// EnvDNSNames lists, comma-separated, DNS names the launcher requests for the workload
	// certificate (the injector sets the pod's Service names); the Coordinator issues only
	// those the deployment manifest allows.
	EnvDNSNames = EnvPrefix + "DNS_NAMES"
)

// Values of EnvTEE.
const (
	TEEGramine    = "gramine"
	TEESimulation = "simulation"
)
