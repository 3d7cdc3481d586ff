// Package readme checks the newcomer's path through the README: TestREADME runs every shell
// command of README.md literally and in order, as on a fresh clone, and requires each to
// succeed; TestGoRunConvert checks what the README says of `go run ./cmd/cloister image
// convert`; TestExampleImage keeps examples/image what its generator makes. The first two are
// end to end (skipped with -short).
package readme
