package attested

import (
	"context"
	"fmt"

	"github.com/cloister-dev/cloister/api"
)

// Manifest returns the current deployment manifest, as it was set, from the Coordinator this
// session verified: the same public document the client API serves. A launcher reads it before
// it activates, to find out whether it can put the workload's files where the manifest delivers
// them, and so not spend an activation on a start that would fail.
//
// An error wrapping [ErrConnClosed] means the session is unusable, as for [MeshSession.Activate];
// an [*APIError] that is Temporary means the Coordinator has no manifest yet.
func (s *MeshSession) Manifest(ctx context.Context) ([]byte, error) {
	var raw []byte
	if err := s.conn.do(ctx, "GET", api.PathManifest, nil, &raw); err != nil {
		return nil, fmt.Errorf("get the manifest: %w", err)
	}
	return raw, nil
}
