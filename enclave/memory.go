package enclave

// DeliveredBytes is the memory-backed storage the launcher sets aside for the files the
// Coordinator delivers (1 MiB): certificates, keys and configuration, far less in practice.
const DeliveredBytes = 1 << 20

// AppShmMiB is the memory-backed storage, in MiB, that a suggested size leaves to the
// application itself: podman's and docker's default /dev/shm (64 MiB), which the application
// had before conversion (PostgreSQL keeps its dynamic shared memory there).
const AppShmMiB = 64

// ShmSizeMiB is the one rule for the size, in MiB, to suggest for the memory-backed storage
// (a container's /dev/shm, a tmpfs, a Kubernetes emptyDir with medium Memory) that must hold
// n bytes for the launcher: n rounded up to whole MiB, plus [AppShmMiB] for the application.
//
// The converter suggests ShmSizeMiB(plaintext + DeliveredBytes), plaintext being
// [Manifest.PlaintextBytes]; the launcher, refusing a start for lack of room, suggests
// ShmSizeMiB(used + needed) for the file system it found, used being what is already taken
// there. On an empty /dev/shm the two are the same number. n < 0 counts as 0.
func ShmSizeMiB(n int64) int64 {
	n = max(n, 0)
	return (n+1<<20-1)>>20 + AppShmMiB
}

// MemoryBytes is the memory-backed storage a launch of m needs: the protected files'
// plaintext ([Manifest.PlaintextBytes]) and [DeliveredBytes] for the delivered files.
func (m *Manifest) MemoryBytes() int64 { return m.PlaintextBytes() + DeliveredBytes }
