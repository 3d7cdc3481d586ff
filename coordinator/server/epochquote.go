package server

import (
	"net/http"
	"strconv"
)

// epochQuote answers with the Coordinator's shared quote of the current epoch, encoded once
// per epoch.
func (s *Server) epochQuote(w http.ResponseWriter, r *http.Request) error {
	_, body, err := s.core.EpochQuote(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}
