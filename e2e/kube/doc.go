// Package kube tests Cloister on Kubernetes end to end on real components (internal/kubetest:
// etcd, kube-apiserver, the controller manager, the scheduler, and a node of containerd and a
// kubelet): `cloister install --simulation` brings up the Coordinator from the image `cloister
// image coordinator` built; `cloister check`, `verify` and `manifest set` reach it through
// port-forwards; a converted Redis image activates and serves TLS with the deployment's
// certificate; `cloister uninstall` removes what install made. The tests skip without the
// prerequisites, and fail instead with CLOISTER_REQUIRE_KUBE=1 (as .ci/run sets).
package kube
