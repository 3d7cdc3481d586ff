package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Usage is the resident memory of one component.
type Usage struct {
	// Component is the process's name ("etcd", "kube-apiserver", ..., "containerd-shims").
	Component string
	// RSS is the resident set size in bytes, summed over the component's processes.
	RSS int64
}

// Memory returns the resident memory of each running component, in start order, and of the
// node's containerd shims and pod processes. Exited components are left out.
func (c *Cluster) Memory() []Usage {
	var out []Usage
	add := func(name string, p *process) {
		if p == nil || p.exited() != nil {
			return
		}
		if rss := rssOf(p.cmd.Process.Pid); rss > 0 {
			out = append(out, Usage{name, rss})
		}
	}
	for _, p := range c.procs {
		add(p.name, p)
	}
	n := c.Node
	if n == nil {
		n = c.pendingNode
	}
	if n != nil {
		add("containerd", n.containerd)
		add("kubelet", n.kubelet)
		var shims int64
		for _, pid := range matching("containerd-shim", n.ContainerdSocket) {
			shims += rssOf(pid)
		}
		out = append(out, Usage{"containerd-shims", shims})
		if n.CgroupParent != "" {
			if b, err := os.ReadFile(filepath.Join(cgroupMount("memory"), n.CgroupParent, "memory.usage_in_bytes")); err == nil {
				var v int64
				if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &v); err == nil {
					out = append(out, Usage{"pods (memory cgroup)", v})
				}
			}
		}
	}
	return out
}

// rssOf returns a process's VmRSS in bytes, or 0.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
