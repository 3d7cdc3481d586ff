package enclave

import "testing"

// The suggested size: whole MiB of what the launcher needs, plus the application's 64 MiB.
func TestShmSizeMiB(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want int64
	}{
		{-1, 64},
		{0, 64},
		{1, 65},
		{1 << 20, 65},
		{1<<20 + 1, 66},
		{100<<20 + 4096 + DeliveredBytes, 166}, // the 100 MiB protected file
	} {
		if got := ShmSizeMiB(tc.n); got != tc.want {
			t.Errorf("ShmSizeMiB(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	m := &Manifest{ProtectedFiles: []ProtectedFile{{Path: "/a", Size: 1}}, ProtectedDirs: []Directory{{Path: "/"}}}
	if got, want := m.MemoryBytes(), int64(2*4096+DeliveredBytes); got != want {
		t.Errorf("MemoryBytes = %d, want %d (two pages and the delivered files' share)", got, want)
	}
}
