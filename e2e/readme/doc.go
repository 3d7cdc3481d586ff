// Package readme runs the README's commands literally, as a newcomer on a fresh clone would, and
// checks that every one succeeds. The test is end to end (skipped with -short); see
// readme_test.go for how the blocks are read and run.
package readme
