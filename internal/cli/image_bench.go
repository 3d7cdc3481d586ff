package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/spf13/cobra"
)

func (a *app) newImageBenchCmd() *cobra.Command {
	var (
		out      outputFlag
		size     string
		dir      string
		launcher string
		keep     bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the converter against the floor (decompress and hash every byte) on a generated image",
		Long: `Generate an image of --size bytes of files (several layers, many small and some large files,
half compressible), then measure in the same run the floor, decompressing every layer and hashing
every byte, and a conversion (run as a child process, protecting one directory) with its peak
resident memory. Targets: conversion at most 1.5 times the floor, peak memory at most 256 MiB.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseByteSize(size)
			if err != nil {
				return usageError(fmt.Errorf("--size: %w", err))
			}
			l, err := findLauncherBinary(launcher)
			if err != nil {
				return err
			}
			res, err := a.bench(cmd.Context(), n, dir, l, keep)
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				verdict := "met"
				if !res.TargetsMet {
					verdict = "NOT met"
				}
				fmt.Fprintf(w, "image      %d files, %s in %d layers\n", res.Files, imageByteSize(res.Bytes), res.Layers)
				fmt.Fprintf(w, "floor      %.2fs (decompress every layer, SHA-256 every byte)\n", res.FloorSeconds)
				fmt.Fprintf(w, "convert    %.2fs (%.0f MB/s)\n", res.ConvertSeconds, float64(res.Bytes)/res.ConvertSeconds/1e6)
				fmt.Fprintf(w, "ratio      %.2f (target at most %.1f)\n", res.Ratio, res.TargetRatio)
				fmt.Fprintf(w, "peak RSS   %s (target at most %s)\n", imageByteSize(res.PeakRSSBytes), imageByteSize(res.TargetPeakBytes))
				fmt.Fprintf(w, "targets    %s\n", verdict)
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "1GiB", "bytes of files in the generated image (KiB, MiB, GiB suffixes)")
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a new temporary directory)")
	cmd.Flags().StringVar(&launcher, "launcher", "", "the cloister-launch binary (default: next to cloister, then in PATH)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory")
	out.register(cmd)
	return cmd
}

// bench generates the image, measures the floor in this process and the
// conversion in a child process (for its peak memory alone).
func (a *app) bench(ctx context.Context, size int64, dir, launcher string, keep bool) (*jsonoutput.ImageBench, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "cloister-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(a.stderr, "Generating a %s image in %s ...\n", imageByteSize(size), dir)
	bi, err := image.GenerateBenchImage(dir, size, 1)
	if err != nil {
		return nil, err
	}
	key, err := enclave.GenerateKey()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "signer.pem")
	if err := os.WriteFile(keyFile, enclave.MarshalKey(key), 0o600); err != nil {
		return nil, err
	}
	src, err := image.Open(ctx, bi.Ref)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Measuring the floor ...\n")
	floor, err := image.Floor(ctx, src, 0)
	src.Close()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Converting ...\n")
	child := exec.CommandContext(ctx, exe, "image", "convert", bi.Ref, "oci:"+filepath.Join(dir, "out")+":bench",
		"--sign-key", keyFile, "--key-file", filepath.Join(dir, "file.key"), "--protect", bi.Protect,
		"--launcher", launcher, "--output", "json")
	var stderr bytes.Buffer
	child.Stdout, child.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := child.Run(); err != nil {
		return nil, fmt.Errorf("conversion: %w\n%s", err, stderr.String())
	}
	took := time.Since(start)
	var rss int64
	if ru, ok := child.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	res := &jsonoutput.ImageBench{Files: bi.Files, Bytes: bi.Bytes, Layers: bi.Layers, FloorSeconds: floor.Duration.Seconds(),
		ConvertSeconds: took.Seconds(), Ratio: took.Seconds() / floor.Duration.Seconds(), PeakRSSBytes: rss,
		TargetRatio: 1.5, TargetPeakBytes: 256 << 20}
	res.TargetsMet = res.Ratio <= res.TargetRatio && res.PeakRSSBytes <= res.TargetPeakBytes
	return res, nil
}

// parseByteSize reads "1GiB", "300MiB", "64KiB" or a number of bytes.
func parseByteSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("expected a positive size such as 1GiB or 300MiB, found %q", s)
	}
	return n * mult, nil
}

func imageByteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
