// Package controlplane holds the end-to-end tests of Cloister's attested control plane: a real
// Coordinator process (`cloister coordinator --simulation`), real launchers (cloister-launch,
// built static, and `cloister launch`) and real programs (shell scripts that write down the
// argv, environment and files they were started with), all on loopback, plus the operator CLI.
//
// The tests build the binaries once per run (TestMain), start every process with temporary
// directories and :0 listeners, wait with deadline-bound polling, stop processes with SIGINT
// and require a clean exit, and print every captured log line when a test fails. They are
// skipped with -short.
package controlplane
