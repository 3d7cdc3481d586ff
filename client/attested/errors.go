package attested

import (
	"encoding/json"
	"fmt"

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
	return e.Code == api.CodeNotReady || e.StatusCode == 503 || e.StatusCode == 429 // Service Unavailable, Too Many Requests
}

// NewAPIError returns the error of an answer with status and body (an api.Error, or anything
// else, of which the first 64 KiB are kept), whose X-Request-Id field was requestID.
func NewAPIError(status int, requestID string, body []byte) *APIError {
	e := &APIError{StatusCode: status, RequestID: requestID}
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
