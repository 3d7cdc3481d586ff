package charts

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxPlatformFile bounds each file of a simulated platform (the largest is a few KiB).
const maxPlatformFile = 64 << 10

// PlatformFiles reads the simulated SGX platform in dir (made by `cloister sim init`) into the
// chart's simulationPlatform.files value: Secret keys ("private/x.pem" as "private.x.pem") to
// base64 contents.
func PlatformFiles(dir string) (map[string]any, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("simulated platform: %w", err)
	}
	defer root.Close()
	out := map[string]any{}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: expected a regular file, found %s", p, d.Type())
		}
		if strings.Count(p, "/") > 1 || strings.Contains(path.Base(p), ".tmp-") {
			return fmt.Errorf("%s: not a file of a simulated platform", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxPlatformFile {
			return fmt.Errorf("%s: %d bytes, expected at most %d", p, info.Size(), maxPlatformFile)
		}
		b, err := fs.ReadFile(root.FS(), p)
		if err != nil {
			return err
		}
		out[strings.ReplaceAll(p, "/", ".")] = base64.StdEncoding.EncodeToString(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("simulated platform %s: %w", dir, err)
	}
	if _, ok := out["platform.json"]; !ok {
		return nil, fmt.Errorf("simulated platform %s: no platform.json; expected a directory made by `cloister sim init`", dir)
	}
	return out, nil
}
