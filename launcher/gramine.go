package launcher

import (
	"fmt"
	"os"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// gramineMemory returns how a launch inside Gramine decides that a directory is memory-backed:
// it is at or below an in-enclave tmpfs mount that the signed enclave manifest records
// (enclave_tmpfs), which the converter wrote into the Gramine manifest from the same list, and
// which MRENCLAVE covers through that manifest (it lists the enclave manifest's SHA-256). Not by
// statfs: Gramine's names no file system type, and its /dev/shm is the host's, passed through
// its host file system, where the host reads everything written.
func gramineMemory(m *enclave.Manifest) func(*os.Root) error {
	return func(dir *os.Root) error {
		if m.InEnclaveTmpfs(dir.Name()) {
			return nil
		}
		if len(m.EnclaveTmpfs) == 0 {
			return fmt.Errorf("%s is not memory-backed storage of this enclave: the enclave manifest records no in-enclave tmpfs (the image was converted before they were recorded; convert it again); refusing to write plaintext there", dir.Name())
		}
		return fmt.Errorf("%s is not memory-backed storage of this enclave: the in-enclave tmpfs mounts of the enclave manifest are %s, and anything else is the host's file system; refusing to write plaintext there",
			dir.Name(), strings.Join(m.EnclaveTmpfs, ", "))
	}
}

// gramineLimits refuses, before activation, what does not work inside Gramine yet. Protected
// files do not: each protected path is a symbolic link in the image into PlaintextDir, and
// Gramine's host file system has no symbolic links of its own, so the host resolves the link,
// to the host's PlaintextDir, not to the in-enclave tmpfs where the launcher decrypts.
func gramineLimits(m *enclave.Manifest) error {
	if len(m.ProtectedFiles) > 0 {
		return fmt.Errorf("protected files (%d, %s first) do not work inside Gramine yet: each is a symbolic link in the image into %s, and Gramine's host file system lets the host resolve it, "+
			"outside the enclave's memory; convert the image without --protect for SGX (keep such data in an --encrypted-volume, or deliver it from the Coordinator), or run it in simulation",
			len(m.ProtectedFiles), m.ProtectedFiles[0].Path, m.PlaintextDir)
	}
	return nil
}
