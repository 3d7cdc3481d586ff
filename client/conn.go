package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxResponse bounds every answer the SDK reads (a manifest is at most 4 MiB, a set of
// secrets a few MiB).
const maxResponse = 16 << 20

// requestBody is in as JSON (raw bytes when in is []byte), or nil for no body.
func requestBody(in any) ([]byte, error) {
	switch v := in.(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	default:
		return json.Marshal(v)
	}
}

// doJSON sends in as JSON (raw bytes when in is []byte) and decodes the answer into out
// ([]byte out receives the raw body). Error answers become *APIError.
func doJSON(ctx context.Context, hc *http.Client, base, method, path string, in, out any) error {
	var body io.Reader
	contentType := ""
	b, err := requestBody(in)
	if err != nil {
		return err
	}
	if b != nil {
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	b, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return &transportError{fmt.Errorf("read answer to %s %s: %w", method, path, err)}
	}
	if len(b) > maxResponse {
		return fmt.Errorf("answer to %s %s is larger than %d bytes", method, path, maxResponse)
	}
	return decodeAnswer(resp, b, method, path, out)
}

// decodeAnswer decodes the answer resp, whose body is b, into out ([]byte out receives the raw
// body). Error answers become *APIError.
func decodeAnswer(resp *http.Response, b []byte, method, path string, out any) error {
	if resp.StatusCode >= 300 {
		return newAPIError(resp, b)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("answer to %s %s: %w", method, path, err)
		}
		return nil
	}
}

// transportError is a request that failed for want of a working connection, not because of the
// answer: the request could not be sent, or the answer not read in full.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
