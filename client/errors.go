package client

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/cloister-dev/cloister/api"
)

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 64 << 10

// APIError is an error answer of the Coordinator.
type APIError struct {
	StatusCode int
	Code       string // one of the api.Code* values, or "" if the answer was not JSON
	Message    string
	RequestID  string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("coordinator answered %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("coordinator refused (%s): %s", e.Code, e.Message)
}

// Temporary reports whether retrying later may succeed: the Coordinator is not ready yet (no
// manifest, a secret not uploaded) or overloaded.
func (e *APIError) Temporary() bool {
	return e.Code == api.CodeNotReady || e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusTooManyRequests
}

func newAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get(api.RequestIDHeader)}
	var eb api.Error
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	e.Message = string(body)
	return e
}

// DialError is a failure to reach the Coordinator: nothing was sent, and trying again later
// may succeed.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("connect to coordinator %s: %v", e.Addr, e.Err)
}
func (e *DialError) Unwrap() error { return e.Err }
