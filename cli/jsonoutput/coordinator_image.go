package jsonoutput

// ImageCoordinator is printed by `cloister image coordinator`: the Coordinator image and the
// identities to verify it by. Hex values are lowercase.
type ImageCoordinator struct {
	// Image is the image reference written.
	Image string `json:"image"`
	// Digest is the image manifest's digest ("sha256:…").
	Digest string `json:"digest"`
	// MREnclaveSimulation is the MRENCLAVE the Coordinator in the image quotes in simulation
	// (`cloister verify --simulation DIR --mrenclave` takes it). On SGX hardware the MRENCLAVE
	// is what gramine-sgx-sign prints for the image's Gramine manifest.
	MREnclaveSimulation string `json:"mrenclave_simulation"`
	// MRSigner is the SGX signer identity of --sign-key: the Coordinator's MRSIGNER on SGX
	// once its Gramine manifest is signed with that key.
	MRSigner string `json:"mrsigner"`
	// MRSignerSimulation is the fixed MRSIGNER every simulated Coordinator quotes.
	MRSignerSimulation string `json:"mrsigner_simulation"`
	// ISVProdID and ISVSVN are the Coordinator enclave's product ID and security version.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// BinarySHA256 is the SHA-256 of the cloister binary in the image; BinarySize its size in
	// bytes.
	BinarySHA256 string `json:"binary_sha256"`
	BinarySize   int64  `json:"binary_size"`
	// Entrypoint is the image's command line; arguments given to the container are appended.
	Entrypoint []string `json:"entrypoint"`
}
