#!/usr/bin/env bash
# Builds the Kubernetes components internal/kubetest runs (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet) from the k8s.io/kubernetes module this
# directory's go.mod pins, into a cache directory, and prints that directory on its last line.
# A cached build of the same pins, Go version and platform is reused: then this takes well
# under a second. A cold build takes about 10 minutes on 2 cores.
#
# Usage: tools/kube/build.sh [-q|-n]
#   -q  print only the directory
#   -n  build nothing: print the directory if it is complete, else fail
#
# The cache is ${CLOISTER_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloister/kube}/KEY, where
# KEY is the Kubernetes version, the Go version, GOOS-GOARCH and a hash of go.mod and go.sum.
# A directory is complete when it holds the file "ready"; builds are serialised with flock.
set -euo pipefail

# Everything is in a function that bash reads whole before running it, so that an edit of this
# file during a build does not derail the build.
main() {

	quiet=false
	check=false
	case "${1-}" in
	-q) quiet=true ;;
	-n) quiet=true; check=true ;;
	"") ;;
	*) echo "usage: $0 [-q|-n]" >&2; exit 2 ;;
	esac
	say() { $quiet || echo "kube build: $*" >&2; }

	cd "$(dirname "$0")"
	kube_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
	[ -n "$kube_version" ] || { echo "kube build: no k8s.io/kubernetes version in $(pwd)/go.mod" >&2; exit 1; }
	go_version=$(go env GOVERSION)
	platform=$(go env GOOS)-$(go env GOARCH)
	pins=$(cat go.mod go.sum | sha256sum | cut -c1-12)
	base=${CLOISTER_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloister/kube}
	dir=$base/$kube_version-$go_version-$platform-$pins
	tools=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

	if [ -e "$dir/ready" ]; then
		say "cached in $dir"
		echo "$dir"
		exit 0
	fi
	if $check; then
		echo "kube build: $dir is not built" >&2
		exit 1
	fi

	mkdir -p "$base"
	exec 9>"$dir.lock"
	flock 9
	if [ -e "$dir/ready" ]; then # built while this one waited
		echo "$dir"
		exit 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir"

	# The version the components report (kubectl version, the node's kubeletVersion), as
	# Kubernetes' hack/lib/version.sh sets it.
	major=${kube_version#v}; major=${major%%.*}
	minor=${kube_version#v*.}; minor=${minor%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done

	say "building ${tools[*]} $kube_version with $go_version into $dir (cold: minutes)"
	start=$(date +%s)
	pkgs=()
	for t in "${tools[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
	CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$dir/" "${pkgs[@]}"
	for t in "${tools[@]}"; do
		[ -x "$dir/$t" ] || { echo "kube build: $dir/$t missing after the build" >&2; exit 1; }
	done
	echo "$kube_version $go_version $platform $pins" >"$dir/ready"
	say "built in $(( $(date +%s) - start ))s"
	echo "$dir"
}

main "$@"
exit
