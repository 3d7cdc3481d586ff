package server

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/recovery"
)

// maxSubmissionBody bounds a recovery submission: an RSA-3072 signature and a share, base64.
const maxSubmissionBody = 16 << 10

// recoverer is the recovery route's logic: a Coordinator in recovery mode (*core.Recovery)
// answers it, a running one (*core.Core) refuses it.
type recoverer interface {
	RecoveryChallenge(ctx context.Context, nonce [32]byte) (*api.RecoveryChallenge, error)
	SubmitRecovery(ctx context.Context, s *recovery.Submission) (*api.RecoveryResponse, error)
}

var (
	_ recoverer = (*core.Core)(nil)
	_ recoverer = (*core.Recovery)(nil)
)

// NewRecovery returns a Server for a Coordinator in recovery mode: its client API serves only
// the status and the recovery route, and answers everything else, like the whole workload API,
// with RECOVERY_MODE (HTTP 503).
func NewRecovery(r *core.Recovery, opts ...Option) *Server {
	s := New(nil, opts...)
	s.recovery = r
	return s
}

// recoveryRoutes are the client API's recovery routes, in both modes.
func (s *Server) recoveryRoutes() []route {
	return []route{
		{pattern: "GET " + api.PathRecovery, h: s.recoveryChallenge},
		{pattern: "POST " + api.PathRecovery, maxBody: maxSubmissionBody, h: s.submitRecovery},
	}
}

func (s *Server) recoverer() recoverer {
	if s.recovery != nil {
		return s.recovery
	}
	return s.core
}

// tlsCertificate is the certificate both APIs present: the recovery-mode one, or the core's.
func (s *Server) tlsCertificate() *tls.Certificate {
	if s.recovery != nil {
		return s.recovery.TLSCertificate()
	}
	return s.core.TLSCertificate()
}

func (s *Server) recoveryChallenge(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query().Get("nonce")
	var nonce [32]byte
	if n, err := hex.Decode(nonce[:], []byte(q)); err != nil || n != 32 || len(q) != 64 {
		return &core.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("nonce: expected 64 hex digits (32 bytes), found %q", bounded(q, 80))}
	}
	ch, err := s.recoverer().RecoveryChallenge(r.Context(), nonce)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ch)
}

func (s *Server) submitRecovery(w http.ResponseWriter, r *http.Request) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	sub, err := recovery.ParseSubmission(raw)
	if err != nil {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: " + err.Error(), Err: err}
	}
	resp, err := s.recoverer().SubmitRecovery(r.Context(), sub)
	if err != nil {
		return err
	}
	if resp.Recovered {
		// The holder's next request must reach the recovered state, on a new connection.
		w.Header().Set("Connection", "close")
	}
	return writeJSON(w, http.StatusOK, resp)
}

// recoveryModeHandler is an API of a Coordinator in recovery mode: routes, if any, and a
// refusal of everything else that says why.
func (s *Server) recoveryModeHandler(apiName string, routes []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.pattern, s.handle(apiName, rt))
	}
	mux.Handle("/", s.handle(apiName, route{pattern: "/", h: func(w http.ResponseWriter, r *http.Request) error {
		msg := fmt.Sprintf("the Coordinator is in recovery mode (%s) and serves only %s and %s; %s %s is refused until its recovery key holders recover it",
			s.recovery.Status().Recovery.Reason, api.PathStatus, api.PathRecovery, bounded(r.Method, 16), bounded(r.URL.Path, 80))
		if !s.recovery.Possible() {
			msg = "the Coordinator is in recovery mode and cannot be recovered: " + s.recovery.Status().Message
		}
		return &core.Error{Code: api.CodeRecoveryMode, Message: msg}
	}}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.recovery.Done():
			// A request on a connection kept alive across the recovery: the server of the
			// recovered state answers on a new connection only (it has another certificate).
			w.Header().Set("Connection", "close")
			s.writeError(w, r, apiName, "", &core.Error{Code: api.CodeNotReady,
				Message: "the recovery is complete and the Coordinator serves the recovered state on new connections: connect again"})
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

func (s *Server) recoveryStatus(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.recovery.Status())
}
