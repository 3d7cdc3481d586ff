package protect_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/cloister-dev/cloister/protect"
)

// The converter encrypts a file at its path; the launcher decrypts it in
// memory with the key the Coordinator delivered, and checks its version.
func Example() {
	key := bytes.Repeat([]byte{0x42}, protect.KeySize) // from a Coordinator secret
	var file bytes.Buffer
	if err := protect.Encrypt(&file, strings.NewReader("db_password=…"), key, "/etc/app/db.conf", 3); err != nil {
		log.Fatal(err)
	}
	fmt.Println(int64(file.Len()) == protect.EncryptedSize(int64(len("db_password=…")), "/etc/app/db.conf"))

	plain, version, err := protect.DecryptAll(&file, key, "/etc/app/db.conf", 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plain), version)
	// Output:
	// true
	// db_password=… 3
}
