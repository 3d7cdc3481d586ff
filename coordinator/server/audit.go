package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
)

// auditWriteTimeout bounds how long one export may take to send: long enough for millions of
// entries, bounded so that a stalled reader does not hold its connection for ever.
const auditWriteTimeout = 10 * time.Minute

// getAudit streams the audit log from ?from=N (default 1) as an export. Errors found before the
// first byte (authorization, a bad from) are answered as usual; a failure in the middle of the
// stream can only cut it, which the reader's verification reports (the export ends without a
// head).
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) error {
	from := uint64(1)
	if q := r.URL.Query().Get("from"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil || n == 0 {
			return &core.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("from: expected an entry number (1 or more), found %q", bounded(q, 40))}
		}
		from = n
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(auditWriteTimeout))
	sw := &startWriter{w: w}
	_, err := s.core.ExportAudit(r.Context(), clientCert(r), from, sw)
	if err != nil && sw.started {
		s.log.Warn("audit export cut short", "error", err.Error())
		return nil // the status is sent; the reader sees an export without its head
	}
	return err
}

// startWriter sets the export's headers before its first byte, so that an error before it is
// still answered as an error.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startWriter) Write(b []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", api.AuditContentType)
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(b)
}
