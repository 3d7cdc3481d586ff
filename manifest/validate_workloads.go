package manifest

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// checkWorkloads validates every workload, compiles its templates and dry-runs them with
// placeholder values.
func (m *Manifest) checkWorkloads(ps *problems) map[string]*compiledWorkload {
	compiled := make(map[string]*compiledWorkload, len(m.Workloads))
	dnsOwner := make(map[string]string)    // DNS name -> workload
	ipOwner := make(map[netip.Addr]string) // IP address -> workload
	placeholders := m.placeholderInput()
	for _, name := range sortedKeys(m.Workloads) {
		w, p := m.Workloads[name], keyPath("$.workloads", name)
		if err := checkName("workload", name); err != nil {
			ps.add(p, "%v", err)
		}
		if _, ok := m.Packages[w.Package]; !ok {
			if w.Package == "" {
				ps.add(p+".package", "expected the name of a package, found none; defined packages: %s", nameList(sortedKeys(m.Packages)))
			} else {
				ps.add(p+".package", "unknown package %s; defined packages: %s", quote(w.Package), nameList(sortedKeys(m.Packages)))
			}
		}
		if !inRange(w.MaxActivations, 0, maxActivations) {
			ps.add(p+".max_activations", "expected 0 (unlimited) to %d, found %d", maxActivations, w.MaxActivations)
		}
		checkList(ps, p+".tls.dns", "DNS name", w.TLS.DNS, func(dns string) error {
			if err := checkDNSName(dns); err != nil {
				return err
			}
			if other, taken := dnsOwner[dns]; taken && other != name {
				return fmt.Errorf("expected a DNS name no other workload has, found %s, a name of workload %s too", quote(dns), quote(other))
			}
			dnsOwner[dns] = name
			return nil
		})
		checkIPs(ps, p+".tls.ip", w.TLS.IP, func(ip string, a netip.Addr) {
			if other, taken := ipOwner[a]; taken {
				ps.add(ip, "expected an IP address no other workload has, found %s, an address of workload %s too", a, quote(other))
				return
			}
			ipOwner[a] = name
		})
		m.checkFileKeys(ps, p+".file_keys", w.FileKeys)
		if w.ReloadSignal != "" {
			switch {
			case !slices.Contains(ReloadSignals, w.ReloadSignal):
				ps.add(p+".reload_signal", "expected one of %s, found %s", strings.Join(ReloadSignals, ", "), quote(w.ReloadSignal))
			case w.Exec:
				ps.add(p+".reload_signal", "expected none with exec: true (an exec'd application is never renewed), found %s", quote(w.ReloadSignal))
			}
		}
		cw, ok := m.compileWorkload(p, name, w, ps)
		compiled[name] = cw
		if ok {
			data, err := m.data(cw, placeholders, false)
			if err != nil { // unreachable: placeholders exist for every secret
				ps.addErr(err)
				continue
			}
			render(cw, data, ps)
		}
	}
	return compiled
}

// compileWorkload parses the templates of w. ok is false if any had a problem.
func (m *Manifest) compileWorkload(p, name string, w Workload, ps *problems) (cw *compiledWorkload, ok bool) {
	before := ps.len()
	cw = &compiledWorkload{name: name, spiffeID: m.SPIFFEID(name)}
	used := make(map[string]struct{})
	for _, key := range sortedKeys(w.Env) {
		vp := keyPath(p+".env", key)
		if err := checkEnvName(key); err != nil {
			ps.add(vp, "%v", err)
		}
		if cv, ok := compileValue(vp, key, w.Env[key], kindEnv, m.Secrets, used, ps); ok {
			cw.env = append(cw.env, cv)
		}
	}
	files := sortedKeys(w.Files)
	for _, key := range files {
		vp := keyPath(p+".files", key)
		if err := checkFilePath(key); err != nil {
			ps.add(vp, "%v", err)
		} else if dir := parentIn(key, w.Files); dir != "" {
			ps.add(vp, "expected a file path, found one under %s, which is also a file", quote(dir))
		}
		if cv, ok := compileValue(vp, key, w.Files[key], kindFile, m.Secrets, used, ps); ok {
			cw.files = append(cw.files, cv)
		}
	}
	for i, arg := range w.Argv {
		if cv, ok := compileValue(indexPath(p+".argv", i), "", arg, kindArgv, m.Secrets, used, ps); ok {
			cw.argv = append(cw.argv, cv)
		}
	}
	cw.secrets = sortedKeys(used)
	for _, s := range cw.secrets {
		if m.Secrets[s].Type == Plain {
			if cw.plain == nil {
				cw.plain = make(map[string]SecretValue)
			}
			cw.plain[s] = SecretValue{Bytes: []byte(m.Secrets[s].Value)}
		}
	}
	return cw, ps.len() == before
}

// parentIn returns the nearest ancestor directory of file p that is itself a key of files,
// or "".
func parentIn(p string, files map[string]string) string {
	for dir := path.Dir(p); dir != "/" && dir != "."; dir = path.Dir(dir) {
		if _, ok := files[dir]; ok {
			return dir
		}
	}
	return ""
}

// Placeholder values for dry runs. They are of the right type and non-empty, and the bytes
// of symmetric keys and certificates contain NUL like real ones may.
const (
	placeholderCert   = "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n"
	placeholderKey    = "-----BEGIN PRIVATE KEY-----\nplaceholder\n-----END PRIVATE KEY-----\n"
	placeholderPublic = "-----BEGIN PUBLIC KEY-----\nplaceholder\n-----END PUBLIC KEY-----\n"
)

// placeholderInput returns a RenderInput with a placeholder value for every secret and
// every workload and CA field.
func (m *Manifest) placeholderInput() RenderInput {
	in := RenderInput{
		Secrets:         make(map[string]SecretValue, len(m.Secrets)),
		Instance:        "placeholder-instance",
		CertPEM:         placeholderCert,
		KeyPEM:          placeholderKey,
		ChainPEM:        placeholderCert + placeholderCert,
		RootPEM:         placeholderCert,
		IntermediatePEM: placeholderCert,
	}
	for name, s := range m.Secrets {
		var v SecretValue
		switch s.Type {
		case SymmetricKey:
			v.Bytes = make([]byte, min(max(s.Size/8, 16), 512))
		case Certificate:
			v = SecretValue{Bytes: []byte("\x30\x00placeholder DER"), CertPEM: []byte(placeholderCert),
				KeyPEM: []byte(placeholderKey), PublicPEM: []byte(placeholderPublic)}
		case Plain:
			v.Bytes = []byte(s.Value)
		default: // user-defined; one byte fits every max_size
			v.Bytes = []byte("x")
		}
		in.Secrets[name] = v
	}
	return in
}

// checkFileKeys checks a workload's file_keys: each names a shared secret that can hold a
// 32-byte protected-file key.
func (m *Manifest) checkFileKeys(ps *problems, p string, keys []string) {
	checkList(ps, p, "secret name", keys, func(name string) error {
		s, ok := m.Secrets[name]
		switch {
		case !ok:
			return fmt.Errorf("expected the name of a defined secret, found %s; defined secrets: %s", quote(name), nameList(sortedKeys(m.Secrets)))
		case s.PerInstance:
			return fmt.Errorf("secret %s is per instance; a protected-file key must be shared, since every instance reads the same image", quote(name))
		case s.Type == SymmetricKey && s.Size != 256:
			return fmt.Errorf("secret %s has %d bits; a protected-file key has 256", quote(name), s.Size)
		case s.Type != SymmetricKey && s.Type != UserDefined:
			return fmt.Errorf("secret %s is of type %s; a protected-file key is a symmetric-key (256 bits) or user-defined secret", quote(name), s.Type)
		}
		return nil
	})
}
