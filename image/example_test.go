package image_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
)

// Convert an image from an OCI layout, protect one file, and write the
// confidential image as a docker-archive for `podman load`.
func ExampleConvert() {
	ctx := context.Background()
	pem, err := os.ReadFile("signer.pem") // made by `cloister image keygen signer.pem`
	if err != nil {
		log.Fatal(err)
	}
	key, err := enclave.ParseKey(pem)
	if err != nil {
		log.Fatal(err)
	}
	fileKey, err := os.ReadFile("app.key") // 32 random bytes, uploaded to the Coordinator later
	if err != nil {
		log.Fatal(err)
	}
	src, err := image.Open(ctx, "oci:app:1")
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	res, err := image.Convert(ctx, src, image.Config{
		Protect:  []string{"/etc/app/secret.conf"},
		FileKey:  fileKey,
		SignKey:  key,
		Launcher: "/usr/local/bin/cloister-launch",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	if _, err := image.Write(ctx, "docker-archive:app-confidential.tar:localhost/app:1-confidential", res.Image); err != nil {
		log.Fatal(err)
	}
	fmt.Println("MRSIGNER", res.Report.MRSigner)
	fmt.Println("simulated MRENCLAVE", res.Report.MREnclaveSimulation)
}
