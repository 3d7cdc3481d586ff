package jsonoutput_test

import (
	"encoding/json"
	"fmt"
	"os/exec"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
)

// decode reads what `cloister status --output json` printed: a Status when it exited 0, an
// Error otherwise.
func decode(stdout []byte, runErr error) (*jsonoutput.Status, error) {
	if runErr != nil {
		var e jsonoutput.Error
		if err := json.Unmarshal(stdout, &e); err != nil || e.Error.Code == "" {
			return nil, runErr // no JSON error document: the command did not run
		}
		return nil, fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
	}
	var s jsonoutput.Status
	if err := json.Unmarshal(stdout, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Example runs the CLI from Go and decodes its output, success or failure.
func Example() {
	_ = func() (*jsonoutput.Status, error) {
		return decode(exec.Command("cloister", "status", "--output", "json").Output())
	}

	// What a Coordinator that was never verified gives:
	stdout := []byte(`{"error": {"code": "NOT_VERIFIED", "message": "coordinator localhost:4433 has not been verified yet"}}`)
	_, err := decode(stdout, &exec.ExitError{})
	fmt.Println(err)

	stdout = []byte(`{"state": "running", "simulation": false, "tee": "sgx", "version": "0.1.0", "manifest_version": 2}`)
	s, _ := decode(stdout, nil)
	fmt.Println(s.State, s.ManifestVersion)
	// Output:
	// NOT_VERIFIED: coordinator localhost:4433 has not been verified yet
	// running 2
}
