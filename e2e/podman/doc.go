// Package podman holds the end-to-end tests of confidential images: real,
// unmodified Debian binaries (Redis, Python) are put into container images
// without Docker, converted with `cloister image convert`, loaded into
// podman and run against a Coordinator in simulation mode. The package has
// no code of its own; see its tests. They are skipped with -short, and
// skipped where podman is missing unless CLOISTER_REQUIRE_PODMAN=1.
package podman
