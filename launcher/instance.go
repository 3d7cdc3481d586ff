package launcher

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Where container runtimes expose a container's ID inside it.
const (
	containerEnvFile = "/run/.containerenv" // podman: a line id="<64 hex>"
	cgroupFile       = "/proc/self/cgroup"  // docker, containerd, cri-o with a host cgroup namespace
	mountInfoFile    = "/proc/self/mountinfo"
)

// defaultInstance returns the instance ID of a launch whose configuration sets none, and where
// it came from: the container's ID where the runtime exposes it (podman's /run/.containerenv,
// else a 64-hex ID in /proc/self/cgroup, else one in a path .../containers/<id>/... of
// /proc/self/mountinfo, as docker and podman mount the container's hostname and resolv.conf),
// which stays the same across restarts of the container and differs between containers; else
// 128 random bits in hex (source ""). readFile reads a file.
func defaultInstance(readFile func(string) ([]byte, error)) (id, source string) {
	if b, err := readFile(containerEnvFile); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "id="); ok {
				if v = strings.Trim(v, `"`); isContainerID(v) {
					return v, containerEnvFile
				}
			}
		}
	}
	if b, err := readFile(cgroupFile); err == nil {
		if id := lastHexID(string(b)); id != "" {
			return id, cgroupFile
		}
	}
	if b, err := readFile(mountInfoFile); err == nil {
		s := string(b)
		for {
			_, after, ok := strings.Cut(s, "containers/")
			if !ok {
				break
			}
			if len(after) > 64 && isContainerID(after[:64]) && after[64] == '/' {
				return after[:64], mountInfoFile
			}
			s = after
		}
	}
	return randomInstance(), ""
}

// lastHexID returns the last run of exactly 64 lowercase hex digits in s, or "".
func lastHexID(s string) string {
	found := ""
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && isHex(s[j]) {
			j++
		}
		if j-i == 64 {
			found = s[i:j]
		}
		if j == i {
			j++
		}
		i = j
	}
	return found
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// randomInstance returns 128 random bits in hex.
func randomInstance() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
