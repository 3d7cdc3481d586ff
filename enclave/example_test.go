package enclave_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"

	"github.com/cloister-dev/cloister/enclave"
)

// The converter signs a manifest; the launcher parses it, checks the host
// environment against it and computes its simulated measurement.
func Example() {
	pem, err := os.ReadFile("testdata/signer.pem") // a public test key
	if err != nil {
		log.Fatal(err)
	}
	key, err := enclave.ParseKey(pem)
	if err != nil {
		log.Fatal(err)
	}
	signed, err := enclave.Sign(&enclave.Manifest{
		Version:  enclave.FormatVersion,
		Argv:     []string{"/usr/bin/app", "--serve"},
		Env:      map[string]string{"PATH": "/usr/bin"},
		AllowEnv: []string{"TZ"},
		Files:    []enclave.File{{Path: "/usr/bin/app", SHA256: sha256.Sum256([]byte("app")), Size: 3}},
	}, key)
	if err != nil {
		log.Fatal(err)
	}

	s, err := enclave.Parse(signed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Manifest.Argv)
	fmt.Println(s.Manifest.Environ([]string{"TZ=UTC", "HOME=/root"}, map[string]string{"TOKEN": "t"}))
	launcher := sha256.Sum256([]byte("launcher binary"))
	mrenclave := enclave.SimMRENCLAVE(launcher, s.Raw)
	fmt.Println(len(mrenclave), s.MRSigner() == enclave.MRSigner(&key.PublicKey))
	// Output:
	// [/usr/bin/app --serve]
	// [PATH=/usr/bin TOKEN=t TZ=UTC]
	// 32 true
}
