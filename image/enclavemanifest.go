package image

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// trustedArgv returns the command the launcher will run: the image's
// Entrypoint then Cmd, after the overrides of cfg.
func trustedArgv(c *v1.Config, cfg *Config) ([]string, error) {
	ep, cmd := c.Entrypoint, c.Cmd
	if cfg.Entrypoint != nil {
		ep, cmd = *cfg.Entrypoint, nil
	}
	if cfg.Cmd != nil {
		cmd = *cfg.Cmd
	}
	argv := slices.Concat(ep, cmd)
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("the image has no Entrypoint or Cmd to run; give one (--entrypoint, --cmd)")
	}
	if isReserved(path.Clean(argv[0])) {
		return nil, fmt.Errorf("the image runs %s, which is the converter's own directory: is it converted already?", argv[0])
	}
	return argv, nil
}

// fixedEnv returns the image's environment ("NAME=value" entries) by name;
// of repeated names the last wins, as in a container runtime.
func fixedEnv(env []string) (map[string]string, error) {
	out := make(map[string]string, len(env))
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("image environment entry %q: expected NAME=value", kv)
		}
		out[name] = value
	}
	return out, nil
}

// enclaveManifest assembles the enclave manifest of the converted image,
// which leaves the exclude patterns unmeasured and records the encrypted
// volumes vols.
func enclaveManifest(c *v1.Config, cfg *Config, files []enclave.File, prot []enclave.ProtectedFile, dirs []enclave.Directory,
	exclude []string, vols []enclave.Volume) (*enclave.Manifest, error) {
	argv, err := trustedArgv(c, cfg)
	if err != nil {
		return nil, err
	}
	env, err := fixedEnv(c.Env)
	if err != nil {
		return nil, err
	}
	wd := c.WorkingDir
	if wd != "" {
		if !path.IsAbs(wd) {
			return nil, fmt.Errorf("image working directory %q: expected an absolute path", wd)
		}
		wd = path.Clean(wd)
	}
	m := &enclave.Manifest{
		Version:        enclave.FormatVersion,
		ISVProdID:      cfg.ISVProdID,
		ISVSVN:         cfg.ISVSVN,
		Argv:           argv,
		Env:            env,
		AllowEnv:       cfg.AllowEnv,
		WorkingDir:     wd,
		User:           c.User,
		Files:          files,
		ProtectedFiles: prot,
		Exclude:        exclude,
		Volumes:        vols,
		Coordinator:    cfg.Coordinator,
		EnclaveSize:    cfg.EnclaveSize,
		Threads:        cfg.Threads,
	}
	if len(prot) > 0 {
		m.ProtectedDirs = dirs
		m.EncryptedDir, m.PlaintextDir = enclave.EncryptedDirDefault, protectedDir
	}
	m.EnclaveTmpfs = enclaveTmpfs(m, cfg.Tmpfs)
	return m, nil
}
