package server

import (
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/manifest"
)

// Request body bounds of governance routes.
const (
	// maxApprovalBody holds an RSA-8192 signature in base64 and the two IDs, with room to spare.
	maxApprovalBody = 8 << 10
	// maxSignature bounds an approval's signature: RSA-8192 makes 1 KiB.
	maxSignature = 1 << 10
	maxSVNBody   = 1 << 10
)

// governanceRoutes are the client API's manifest governance routes (see governance.go).
func (s *Server) governanceRoutes() []route {
	return []route{
		{pattern: "POST " + api.PathManifestProposal, maxBody: manifest.MaxSize, h: s.proposeManifest},
		{pattern: "GET " + api.PathManifestProposal, h: s.pendingManifest},
		{pattern: "DELETE " + api.PathManifestProposal, h: s.cancelManifest},
		{pattern: "POST " + api.PathManifestApprove, maxBody: maxApprovalBody, h: s.approveManifest},
		{pattern: "POST " + api.PathManifestSVN, maxBody: maxSVNBody, h: s.updateSVN},
	}
}

func (s *Server) proposeManifest(w http.ResponseWriter, r *http.Request) error {
	cert := clientCert(r)
	if err := s.preAuthenticate(cert, true, "proposing a manifest update needs a client certificate of a user with the manifest update role"); err != nil {
		return err
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	p, err := s.core.ProposeManifest(r.Context(), cert, raw)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) pendingManifest(w http.ResponseWriter, r *http.Request) error {
	p, err := s.core.PendingManifest(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) cancelManifest(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("id")
	if id != "" && !isHex(id, 32) {
		return &core.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("id: expected a proposal ID of 32 hex digits, found %q", bounded(id, 80))}
	}
	p, err := s.core.CancelManifest(r.Context(), clientCert(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) approveManifest(w http.ResponseWriter, r *http.Request) error {
	cert := clientCert(r)
	if err := s.preAuthenticate(cert, true, "approving a manifest update needs a client certificate of a user with the manifest update role"); err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeApproval(b)
	if err != nil {
		return err
	}
	resp, err := s.core.ApproveManifest(r.Context(), cert, req.ID, req.Digest, req.Signature)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// decodeApproval decodes and checks the body of an approval: strictly (see
// [manifest.DecodeStrict]), with every field present and well formed. Its errors are
// BAD_REQUEST.
func decodeApproval(b []byte) (*api.ApproveRequest, error) {
	var req api.ApproveRequest
	if err := manifest.DecodeStrict(b, &req); err != nil {
		return nil, &core.Error{Code: api.CodeBadRequest, Message: "request body: " + firstProblems(err), Err: err}
	}
	var problems []string
	if !isHex(req.ID, 32) {
		problems = append(problems, fmt.Sprintf("$.id: expected the proposal ID, 32 lowercase hex digits, found %q", bounded(req.ID, 80)))
	}
	if !isHex(req.Digest, 64) {
		problems = append(problems, fmt.Sprintf("$.digest: expected the manifest's SHA-256, 64 lowercase hex digits, found %q", bounded(req.Digest, 80)))
	}
	if n := len(req.Signature); n == 0 || n > maxSignature {
		problems = append(problems, fmt.Sprintf("$.signature: expected a signature of 1 to %d bytes, found %d bytes", maxSignature, n))
	}
	if len(problems) > 0 {
		return nil, &core.Error{Code: api.CodeBadRequest, Message: "request body: " + joinProblems(problems)}
	}
	return &req, nil
}

func joinProblems(ps []string) string {
	out := ps[0]
	for _, p := range ps[1:] {
		out += "; " + p
	}
	return out
}

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == toLowerASCII(s)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s *Server) updateSVN(w http.ResponseWriter, r *http.Request) error {
	cert := clientCert(r)
	if err := s.preAuthenticate(cert, true, "updating a package's security version needs a client certificate of a user with the update role on the package"); err != nil {
		return err
	}
	var req api.UpdateSVNRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Package == "" {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: $.package: expected a package name, found none"}
	}
	resp, err := s.core.UpdateSVN(r.Context(), cert, req.Package, req.SVN)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}
