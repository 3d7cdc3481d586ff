package injector_test

import (
	"crypto/tls"
	"net"
	"time"
)

// tlsDial connects to the webhook without verifying it: the test only looks at the certificate.
func tlsDial(addr string) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
}
