package pcs

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound is wrapped by the error of a request the service answered with HTTP 404 Not
// Found: for TCB Info, an FMSPC it does not know. Match it with errors.Is.
var ErrNotFound = errors.New("not found on the collateral service")

// maxErrorExcerpt bounds the part of an error response body kept in [HTTPError.Body].
const maxErrorExcerpt = 256

// maxRequestID bounds the request ID kept in [HTTPError.RequestID].
const maxRequestID = 128

// HTTPError is returned (wrapped) when the service answers a status other than 200 OK. It
// matches [ErrNotFound] with errors.Is when the status is 404.
type HTTPError struct {
	URL        string // the request URL, with any password redacted
	StatusCode int
	Body       string // at most the first 256 bytes of the response body
	RequestID  string // the Request-ID header Intel's PCS sends, if any (at most 128 bytes)
}

// Error returns "GET <url>: HTTP <status>; expected 200 OK: <body excerpt>".
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("GET %s: HTTP %d %s; expected 200 OK", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		s += fmt.Sprintf(": body %q", e.Body)
	}
	if e.RequestID != "" {
		s += fmt.Sprintf(" (request ID %q)", e.RequestID)
	}
	return s
}

// Is reports whether target is [ErrNotFound] and the status 404.
func (e *HTTPError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}
