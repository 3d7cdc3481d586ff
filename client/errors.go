package client

import (
	"net/http"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
)

func newAPIError(resp *http.Response, body []byte) *APIError {
	return attested.NewAPIError(resp.StatusCode, resp.Header.Get(api.RequestIDHeader), body)
}
