package cli

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodReady: what `cloister check` says about a pod that is not ready names the cause.
func TestPodReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		ready  bool
		want   string
	}{
		{"ready", corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}, true, ""},
		{"no SGX", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name:                 "coordinator",
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "line one\n\ncloister: no SGX: /dev/attestation/quote does not exist\n"}},
		}}}, false, "container coordinator exited with code 1 (Error): line one | cloister: no SGX: /dev/attestation/quote does not exist"},
		{"unschedulable", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/1 nodes are available: 1 Insufficient sgx.intel.com/epc.",
		}}}, false, "PodScheduled: 0/1 nodes are available: 1 Insufficient sgx.intel.com/epc."},
		{"image", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "injector", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image not present"}},
		}}}, false, "container injector waiting: ErrImageNeverPull image not present"},
		{"starting", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "coordinator", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}}, false, "running, not ready yet"},
		{"recovery mode", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "coordinator", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, Started: new(true),
		}}}, false, "serves but is not ready: it refuses workloads (recovery mode, or no data key yet)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, reason := podReady(&corev1.Pod{Status: tc.status})
			if ready != tc.ready || !strings.Contains(reason, tc.want) {
				t.Errorf("podReady = %v, %q; want %v, containing %q", ready, reason, tc.ready, tc.want)
			}
		})
	}
}

// TestPickCoordinatorPod: a ready replica first; with none ready, one that serves its status
// (recovery mode) so that status and recover reach it; never one being deleted or starting.
func TestPickCoordinatorPod(t *testing.T) {
	ready := corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	started := corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "coordinator", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, Started: new(true)}}}
	starting := corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "coordinator", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, Started: new(false)}}}
	pod := func(name string, st corev1.PodStatus, deleting bool) corev1.Pod {
		p := corev1.Pod{Status: st}
		p.Name = name
		if deleting {
			p.DeletionTimestamp = &metav1.Time{}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"ready wins", []corev1.Pod{pod("a", started, false), pod("b", ready, false)}, "b"},
		{"recovery mode", []corev1.Pod{pod("a", starting, false), pod("b", started, true), pod("c", started, false)}, "c"},
		{"none", []corev1.Pod{pod("a", starting, false), pod("b", started, true)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, why := pickCoordinatorPod(tc.pods)
			got := ""
			if p != nil {
				got = p.Name
			}
			if got != tc.want || (p == nil && len(why) != len(tc.pods)) {
				t.Errorf("pickCoordinatorPod = %q (why %q), want %q", got, why, tc.want)
			}
		})
	}
}

// TestPinKey: a Coordinator reached through a port-forward is pinned under its cluster and
// namespace, not the forward's random port.
func TestPinKey(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	dir := t.TempDir()
	f := &connFlags{addr: "127.0.0.1:40001", configDir: dir, pinKey: "kube_127.0.0.1:6443_cloister"}
	p1, err := a.pinPath(f)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = "127.0.0.1:40002"
	p2, _ := a.pinPath(f)
	if p1 != p2 || !strings.Contains(p1, "kube_127.0.0.1_6443_cloister") {
		t.Errorf("pin paths %s and %s; want one path under the cluster and namespace", p1, p2)
	}
}
