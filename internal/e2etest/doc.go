// Package e2etest is the harness of Cloister's end-to-end tests: tests that run the real
// binaries as subprocesses (e2e/controlplane, e2e/podman, the demo) and tests that need a built
// binary (the converter embeds cloister-launch).
//
// # Binaries
//
// [Build] builds cmd/cloister and cmd/cloister-launch (static, CGO_ENABLED=0) at most once per
// test process. The test processes of one `go test ./...` run, which run in parallel, share one
// build: the binaries go to a cache directory under [os.TempDir] keyed by a hash of the module's
// source and of the go command's build settings, and a file lock lets one process build while
// the others wait. Entries unused for an hour are removed by the next build.
//
// # Processes
//
// [New] gives a test an [Env]: a temporary directory, every process started in it ([Env.Start],
// [Env.StartCoordinator], [Env.CLI]) with nothing inherited from the test's environment, and
// everything they printed. When the test ends, processes still running are stopped (and the test
// fails: a test stops what it started, with SIGINT, and checks the exit); if the test failed,
// every captured log is printed. Waits are deadline-bound polls ([WaitFor]), never sleeps.
//
// # Skipping
//
// Every end-to-end test is skipped with -short ([SkipShort]). The container tests also need
// podman and host programs; [Require] skips a test that lacks one, or fails it when
// CLOISTER_REQUIRE_PODMAN=1 (as in CI), naming each prerequisite that is missing.
package e2etest
