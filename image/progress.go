package image

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// Progress is a snapshot of a conversion, an inspection or a verification
// in progress.
type Progress struct {
	// Phase is "reading" (hashing every layer), "rewriting" (layers that
	// held protected files) or "writing" (the output image); [Convert]
	// reports "done" once at the end.
	Phase string
	// Layers is the number of layers of the phase; LayersDone how many are
	// finished.
	Layers, LayersDone int
	// Files counts the regular files hashed so far.
	Files int64
	// Bytes counts the compressed bytes read so far; TotalBytes is the
	// compressed size of all layers, or 0 when unknown.
	Bytes, TotalBytes int64
}

// ProgressFunc receives progress snapshots, about ten times a second and
// once when a phase ends. Calls come from one goroutine at a time.
type ProgressFunc func(Progress)

// counter is an int64 that several goroutines add to.
type counter struct{ atomic.Int64 }

func (c *counter) add(n int64) int64 {
	if c == nil {
		return 0
	}
	return c.Add(n)
}

// tracker holds the live counters of one phase and reports them.
type tracker struct {
	phase             string
	layers            int
	layersDone, files counter
	bytes             counter
	total             int64
}

func (t *tracker) snapshot() Progress {
	return Progress{
		Phase: t.phase, Layers: t.layers, LayersDone: int(t.layersDone.Load()),
		Files: t.files.Load(), Bytes: t.bytes.Load(), TotalBytes: t.total,
	}
}

// report calls fn with t's snapshot every 100 ms until ctx ends, then once
// more. It returns a function that stops it and waits for the last call.
func (t *tracker) report(fn ProgressFunc) (stop func()) {
	if fn == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				fn(t.snapshot())
				return
			case <-tick.C:
				fn(t.snapshot())
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// countingReader counts the bytes read through it into n.
type countingReader struct {
	r io.Reader
	n *counter
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.add(int64(k))
	return k, err
}
