// Package logbuf is a bytes.Buffer that concurrent writers may share, for tests that capture
// the logs and output of running components while reading them.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it. It is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
