package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/cloister-dev/cloister/image"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// imageProgress shows a progress bar on a terminal, and nothing otherwise.
type imageProgress struct {
	bar *progressbar.ProgressBar
}

// imageProgressBar returns a progress display on stderr when it is a terminal.
func (a *app) imageProgressBar(what string) *imageProgress {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &imageProgress{}
	}
	return &imageProgress{bar: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(f), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(what), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionSetPredictTime(false))}
}

func (p *imageProgress) update(s image.Progress) {
	if p.bar == nil {
		return
	}
	if s.TotalBytes > 0 && p.bar.GetMax64() != s.TotalBytes {
		p.bar.ChangeMax64(s.TotalBytes)
	}
	p.bar.Describe(fmt.Sprintf("%s: layer %d/%d, %d files", s.Phase, s.LayersDone, s.Layers, s.Files))
	_ = p.bar.Set64(s.Bytes)
}

func (p *imageProgress) describe(s string) {
	if p.bar != nil {
		p.bar.Describe(s)
	}
}

func (p *imageProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
