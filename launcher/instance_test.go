package launcher

import (
	"io/fs"
	"strings"
	"testing"
)

// The default instance ID is the container's ID where the runtime exposes it, else random.
func TestDefaultInstance(t *testing.T) {
	const (
		podmanID = "3f1b2c9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
		dockerID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
		layerID  = "0000000000000000000000000000000000000000000000000000000000000abc"
	)
	for _, tc := range []struct {
		name       string
		files      map[string]string
		want, from string
	}{
		{"podman", map[string]string{
			containerEnvFile: "engine=\"podman-4.3.1\"\nname=\"db\"\nid=\"" + podmanID + "\"\nimage=\"localhost/pg:latest\"\n",
			mountInfoFile:    "1 0 0:1 / / rw - overlay overlay rw,upperdir=/var/lib/containers/storage/overlay/" + layerID + "/diff\n",
		}, podmanID, containerEnvFile},
		{"podman without an id line: its hostname mount", map[string]string{
			containerEnvFile: "",
			cgroupFile:       "0::/\n",
			mountInfoFile: "1 0 0:1 / / rw - overlay overlay rw,upperdir=/var/lib/containers/storage/overlay/" + layerID + "/diff\n" +
				"2 1 8:1 /var/lib/containers/storage/overlay-containers/" + podmanID + "/userdata/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n",
		}, podmanID, mountInfoFile},
		{"docker with cgroup v1", map[string]string{
			cgroupFile: "12:pids:/docker/" + dockerID + "\n0::/system.slice/docker-" + dockerID + ".scope\n",
		}, dockerID, cgroupFile},
		{"docker's resolv.conf mount", map[string]string{
			cgroupFile:    "0::/\n",
			mountInfoFile: "3 1 8:1 /var/lib/docker/containers/" + dockerID + "/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw\n",
		}, dockerID, mountInfoFile},
		{"nothing: random", map[string]string{cgroupFile: "0::/\n", mountInfoFile: "1 0 0:1 / / rw - overlay overlay rw,upperdir=/x/" + layerID + "/diff\n"}, "", ""},
		{"a malformed id", map[string]string{containerEnvFile: "id=\"" + podmanID[:63] + "\"\n"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := func(p string) ([]byte, error) {
				if s, ok := tc.files[p]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}
			id, from := defaultInstance(read)
			if tc.want == "" {
				id2, _ := defaultInstance(read)
				if from != "" || len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || id == id2 {
					t.Errorf("defaultInstance = %q from %q (then %q); want 32 random hex digits", id, from, id2)
				}
				return
			}
			if id != tc.want || from != tc.from {
				t.Errorf("defaultInstance = %q from %q; want %q from %q", id, from, tc.want, tc.from)
			}
		})
	}
}
