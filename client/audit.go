package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cloister-dev/cloister/api"
)

// AuditLog writes the Coordinator's audit log from entry from (1 for all of it) to w, as the
// Coordinator exports it (see package audit): a header, the entries, and the signed head. The
// caller must be a user of the manifest ([WithCertificate]). The export is not checked here:
// verify it with audit.Verify and the pinned root. A from one past the newest entry gets an
// export with the head only, which is how a follower polls for new entries.
//
// An export may be long: the Client's timeout does not apply to it; ctx bounds it.
func (c *Client) AuditLog(ctx context.Context, from uint64, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+api.PathAudit+"?from="+strconv.FormatUint(from, 10), nil)
	if err != nil {
		return err
	}
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return newAPIError(resp, b)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return &transportError{fmt.Errorf("read the audit log: %w", err)}
	}
	return nil
}
