package client

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/url"

	"github.com/cloister-dev/cloister/api"
)

// ProposeManifest proposes raw (sent as it is) as the pending manifest update. It needs a
// user with the manifest update role. Proposing is not approving.
func (c *Client) ProposeManifest(ctx context.Context, raw []byte) (*api.PendingUpdate, error) {
	var p api.PendingUpdate
	return &p, c.do(ctx, "POST", api.PathManifestProposal, raw, &p)
}

// PendingManifest returns the pending manifest update with its manifest. An [APIError] with
// code NOT_FOUND means none is pending.
func (c *Client) PendingManifest(ctx context.Context) (*api.PendingUpdate, error) {
	var p api.PendingUpdate
	return &p, c.do(ctx, "GET", api.PathManifestProposal, nil, &p)
}

// ApproveManifest approves the pending update p with signature, made by [SignApproval] with
// the key of the client's certificate.
func (c *Client) ApproveManifest(ctx context.Context, p *api.PendingUpdate, signature []byte) (*api.ApproveResponse, error) {
	var r api.ApproveResponse
	req := api.ApproveRequest{ID: p.ID, Digest: p.Digest, Signature: signature}
	return &r, c.do(ctx, "POST", api.PathManifestApprove, req, &r)
}

// CancelManifest withdraws the pending update; a non-empty id must be its proposal ID. It
// returns the withdrawn update.
func (c *Client) CancelManifest(ctx context.Context, id string) (*api.PendingUpdate, error) {
	path := api.PathManifestProposal
	if id != "" {
		path += "?" + url.Values{"id": {id}}.Encode()
	}
	var p api.PendingUpdate
	return &p, c.do(ctx, "DELETE", path, nil, &p)
}

// UpdateSVN raises the min_isvsvn of package pkg to svn. It needs a user with the update role on
// the package.
func (c *Client) UpdateSVN(ctx context.Context, pkg string, svn uint16) (*api.SetManifestResponse, error) {
	var r api.SetManifestResponse
	return &r, c.do(ctx, "POST", api.PathManifestSVN, api.UpdateSVNRequest{Package: pkg, SVN: svn}, &r)
}

// SignApproval signs the approval message of p ([api.PendingUpdate.ApprovalMessage]) with key,
// the private key of the approver's user certificate: ECDSA and RSA keys sign its SHA-256
// (ASN.1, and PKCS #1 v1.5), Ed25519 keys the message itself.
func SignApproval(key crypto.Signer, p *api.PendingUpdate) ([]byte, error) {
	msg := p.ApprovalMessage()
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	h := sha256.Sum256(msg)
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign the approval: %w", err)
	}
	return sig, nil
}
