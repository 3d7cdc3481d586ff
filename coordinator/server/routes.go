package server

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/manifest"
)

// Request body bounds.
const (
	maxSecretsBody    = 4 << 20   // up to a few 1 MiB user-defined values, base64
	maxActivationBody = 256 << 10 // a quote (≤ 128 KiB) and a CSR, base64
	maxSecretNames    = 100
)

// clientRoutes is the client API.
func (s *Server) clientRoutes() []route {
	return []route{
		{pattern: "GET " + api.PathStatus, h: s.status},
		{pattern: "GET " + api.PathQuote, h: s.quote},
		{pattern: "GET " + api.PathQuoteEpoch, h: s.epochQuote},
		{pattern: "GET " + api.PathManifest, h: s.getManifest},
		{pattern: "POST " + api.PathManifest, maxBody: manifest.MaxSize, h: s.setManifest},
		{pattern: "GET " + api.PathSecrets, h: s.getSecrets},
		{pattern: "POST " + api.PathSecrets, maxBody: maxSecretsBody, h: s.setSecrets},
		{pattern: "GET " + api.PathRootCert, h: s.certificate("root")},
		{pattern: "GET " + api.PathIntermediateCert, h: s.certificate("intermediate")},
		{pattern: "GET " + api.PathChain, h: s.certificate("chain")},
		{pattern: "GET " + api.PathAudit, h: s.getAudit},
	}
}

// meshRoutes is the workload API. The manifest is public (the client API serves it to anyone);
// a launcher reads it before it activates, to check where it will have to write.
func (s *Server) meshRoutes() []route {
	return []route{
		{pattern: "GET " + api.PathQuote, h: s.quote},
		{pattern: "GET " + api.PathManifest, h: s.getManifest},
		{pattern: "GET " + api.PathQuoteEpoch, h: s.epochQuote},
		{pattern: "POST " + api.PathActivate, maxBody: maxActivationBody, h: s.activate},
	}
}

// ClientHandler returns the client API handler, governance routes included. It expects TLS
// (for user certificates).
func (s *Server) ClientHandler() http.Handler {
	if s.recovery != nil {
		return s.recoveryModeHandler("client", append([]route{{pattern: "GET " + api.PathStatus, h: s.recoveryStatus}}, s.recoveryRoutes()...))
	}
	return s.mux("client", append(append(s.clientRoutes(), s.governanceRoutes()...), s.recoveryRoutes()...))
}

// MeshHandler returns the workload API handler. It expects TLS 1.3 (for the activation binding).
func (s *Server) MeshHandler() http.Handler {
	if s.recovery != nil {
		return s.recoveryModeHandler("mesh", nil)
	}
	return s.mux("mesh", s.meshRoutes())
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.core.Status())
}

func (s *Server) quote(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query().Get("nonce")
	var nonce [32]byte
	if n, err := hex.Decode(nonce[:], []byte(q)); err != nil || n != 32 || len(q) != 64 {
		return &core.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("nonce: expected 64 hex digits (32 bytes), found %q", bounded(q, 80))}
	}
	resp, err := s.core.Quote(r.Context(), nonce)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// clientCert returns the caller's TLS client certificate, or nil. The certificate only says
// who the caller claims to be: the core authenticates it against the manifest it acts on.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0]
	}
	return nil
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request) error {
	raw, version, err := s.core.Manifest()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.ManifestVersionHeader, strconv.Itoa(version))
	_, err = w.Write(raw)
	return err
}

// preAuthenticate refuses, before the body is read, a caller the current manifest already
// refuses: bodies may be megabytes, and strangers must not make the Coordinator read and decode
// them. The decision that counts is made again with the body, under the lock that applies it.
func (s *Server) preAuthenticate(cert *x509.Certificate, needUser bool, anonymous string) error {
	if _, err := s.core.Authenticate(cert); err != nil {
		return err
	}
	if needUser && cert == nil {
		return &core.Error{Code: api.CodeUnauthenticated, Message: anonymous}
	}
	return nil
}

func (s *Server) setManifest(w http.ResponseWriter, r *http.Request) error {
	if err := s.preAuthenticate(clientCert(r), s.core.ManifestVersion() > 0,
		"a manifest is already set; updating it needs a client certificate of a user with the manifest update role"); err != nil {
		return err
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	resp, err := s.core.SetManifest(r.Context(), clientCert(r), raw)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getSecrets(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["name"]
	if len(names) > maxSecretNames {
		return &core.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("%d secret names; at most %d per request", len(names), maxSecretNames)}
	}
	secrets, err := s.core.Secrets(r.Context(), clientCert(r), names)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.SecretsResponse{Secrets: secrets})
}

func (s *Server) setSecrets(w http.ResponseWriter, r *http.Request) error {
	cert := clientCert(r)
	if err := s.preAuthenticate(cert, true, "setting secrets needs a client certificate of a manifest user"); err != nil {
		return err
	}
	var req api.SetSecretsRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.core.SetSecrets(r.Context(), cert, req.Secrets); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) certificate(which string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		root, inter := s.core.Certificates()
		var out string
		switch which {
		case "root":
			out = root
		case "intermediate":
			out = inter
		case "chain":
			if inter != "" { // without an intermediate there is no chain, only the root
				out = inter + root
			}
		}
		if out == "" {
			return &core.Error{Code: api.CodeNotReady, Message: "no intermediate CA yet: it is created with the first manifest"}
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, err := io.WriteString(w, out)
		return err
	}
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request) error {
	if r.TLS == nil {
		return &core.Error{Code: api.CodeBadRequest, Message: "activation needs TLS: the quote is bound to the TLS connection"}
	}
	exporter, err := attest.Exporter(r.TLS)
	if err != nil {
		return err
	}
	var req api.ActivationRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	resp, err := s.core.Activate(r.Context(), &req, exporter)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// Routes lists the method and path patterns each API serves ("client" and "mesh"), for
// documentation and for the test that keeps api/openapi.json in step.
func Routes() map[string][]string {
	s := &Server{}
	out := map[string][]string{}
	client := append(append(s.clientRoutes(), s.governanceRoutes()...), s.recoveryRoutes()...)
	for name, table := range map[string][]route{"client": client, "mesh": s.meshRoutes()} {
		for _, r := range table {
			out[name] = append(out[name], r.pattern)
		}
	}
	return out
}
