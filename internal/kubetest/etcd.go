package kubetest

import (
	"context"
	"errors"
	"fmt"
)

// StopEtcd stops etcd as a crash would (SIGKILL), leaving its data: the API server stays up
// and answers with errors until [Cluster.StartEtcd]. Tests use it to show what clients of the
// API server do while its storage is gone.
func (c *Cluster) StopEtcd() error {
	c.procsMu.Lock()
	defer c.procsMu.Unlock()
	p := c.procs[0]
	if p.name != "etcd" {
		return fmt.Errorf("kubetest: the first component is %s, expected etcd", p.name)
	}
	if p.exited() != nil {
		return errors.New("kubetest: etcd is not running")
	}
	_ = p.stop(0)
	return nil
}

// StartEtcd starts etcd again on its data and address after [Cluster.StopEtcd], and waits
// until it is healthy. The API server reconnects by itself.
func (c *Cluster) StartEtcd(ctx context.Context) error {
	c.procsMu.Lock()
	defer c.procsMu.Unlock()
	if c.procs[0].exited() == nil {
		return errors.New("kubetest: etcd is running")
	}
	p, err := startProcess(c.logDir, "etcd", "etcd", c.etcdArgs, minimalEnv())
	if err != nil {
		return err
	}
	c.procs[0] = p
	if err := waitHTTP(ctx, p, c.etcdURL+"/health", nil); err != nil {
		return fmt.Errorf("kubetest: etcd after a restart: %w", err)
	}
	return nil
}
