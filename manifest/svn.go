package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// WithMinISVSVN returns the manifest document of m with the min_isvsvn of package pkg set to
// svn, and nothing else changed: the number's bytes are replaced where they stand, so that the
// new document reads (and diffs) like the old one. The result is deterministic. pkg must be an
// mrsigner package of a Manifest made by [Parse]; WithMinISVSVN does not check that svn is
// higher (callers decide that) and returns bytes the caller parses again.
func (m *Manifest) WithMinISVSVN(pkg string, svn uint16) ([]byte, error) {
	p, ok := m.Packages[pkg]
	switch {
	case m.raw == nil:
		return nil, fmt.Errorf("manifest: WithMinISVSVN needs a Manifest made by Parse")
	case !ok:
		return nil, fmt.Errorf("unknown package %s; defined packages: %s", quote(pkg), nameList(sortedKeys(m.Packages)))
	case p.MinISVSVN == nil:
		return nil, fmt.Errorf("package %s names an exact enclave (mrenclave); only mrsigner packages have a min_isvsvn", quote(pkg))
	}
	start, end, err := valueSpan(m.raw, []string{"packages", pkg, "min_isvsvn"})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(m.raw)+5)
	out = append(out, m.raw[:start]...)
	out = strconv.AppendUint(out, uint64(svn), 10)
	return append(out, m.raw[end:]...), nil
}

// valueSpan returns the byte range of the scalar value at the object keys path in the JSON
// document b, which Parse has accepted (so every key occurs once).
func valueSpan(b []byte, path []string) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func(depth int) (bool, error) // reports whether the value was found
	walk = func(depth int) (bool, error) {
		if _, err := dec.Token(); err != nil { // '{'
			return false, err
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return false, err
			}
			keyEnd := int(dec.InputOffset())
			if tok.(string) != path[depth] {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return false, err
				}
				continue
			}
			if depth < len(path)-1 {
				return walk(depth + 1)
			}
			v, err := dec.Token()
			if err != nil {
				return false, err
			}
			if _, ok := v.(json.Number); !ok {
				return false, fmt.Errorf("value at %s is not a number", path)
			}
			end = int(dec.InputOffset())
			// Between the key and the number: white space and one ':'.
			start = keyEnd + bytes.IndexByte(b[keyEnd:end], ':') + 1
			for start < end && (b[start] == ' ' || b[start] == '\t' || b[start] == '\r' || b[start] == '\n') {
				start++
			}
			return true, nil
		}
		return false, nil
	}
	found, err := walk(0)
	if err != nil {
		return 0, 0, fmt.Errorf("manifest: locate %v: %w", path, err)
	}
	if !found {
		return 0, 0, fmt.Errorf("manifest: no value at %v", path)
	}
	return start, end, nil
}
