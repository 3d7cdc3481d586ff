package enclave

import (
	"maps"
	"slices"
	"strings"
)

// Environ returns the application's environment as sorted "NAME=value"
// strings, built in three layers, each overriding the one before it:
//
//  1. the manifest's fixed Env;
//  2. the host variables in host ("NAME=value", as os.Environ returns them)
//     whose names [Manifest.AllowsEnv] accepts; of repeated host names the
//     last wins;
//  3. delivered, the environment the Coordinator delivered on activation.
//
// So the Coordinator always has the last word, and the host can change only
// what the signed manifest lets it. Entries whose name is empty or contains
// '=' or NUL, and values containing NUL, are dropped from every layer,
// since execve could not pass them intact. Environ only reads m.
func (m *Manifest) Environ(host []string, delivered map[string]string) []string {
	env := make(map[string]string, len(m.Env)+len(delivered)+8)
	set := func(name, value string) {
		if checkEnvName(name) == "" && strings.IndexByte(value, 0) < 0 {
			env[name] = value
		}
	}
	for name, value := range m.Env {
		set(name, value)
	}
	for _, kv := range host {
		if name, value, ok := strings.Cut(kv, "="); ok && m.AllowsEnv(name) {
			set(name, value)
		}
	}
	for name, value := range delivered {
		set(name, value)
	}
	out := make([]string, 0, len(env))
	for _, name := range slices.Sorted(maps.Keys(env)) {
		out = append(out, name+"="+env[name])
	}
	return out
}

// AllowsEnv reports whether the host variable name may reach the
// application: it equals an AllowEnv entry, or starts with the prefix of an
// entry ending in "*".
func (m *Manifest) AllowsEnv(name string) bool {
	for _, a := range m.AllowEnv {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if a == name {
			return true
		}
	}
	return false
}
