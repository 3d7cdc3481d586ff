package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Protected files whose plaintext is searched for in the image's metadata:
// at most maxSearched bytes, and at least minSearched bytes once white space
// is trimmed from both ends. Shorter content would match by chance; longer
// content is a file, not a value anyone would put into a build argument or
// an environment variable.
const (
	minSearched = 8
	maxSearched = 4 << 10
)

// RedactedCreatedBy replaces the build commands (created_by) of the
// image's history when [Config.RedactHistory] is set.
const RedactedCreatedBy = "(build step redacted by cloister image convert --redact-history)"

// plaintext is the content of one protected file, kept to search the
// metadata of the converted image for it.
type plaintext struct {
	path string // the protected path (the first, for hard links)
	data []byte // the content, trimmed of white space
}

// searchable returns the content of a protected file as it is searched
// for (trimmed of white space, so that it is found however it was quoted
// or followed by a newline; every occurrence of the whole content holds the
// trimmed one), or nil when it is too short or too long to be searched.
func searchable(content []byte) []byte {
	if len(content) > maxSearched {
		return nil
	}
	t := bytes.TrimSpace(content)
	if len(t) < minSearched {
		return nil
	}
	return bytes.Clone(t)
}

// metadataBlob is a blob of the converted image that is not a layer's
// content as such: its configuration, its manifest, the enclave manifest.
type metadataBlob struct {
	name string // what it is, for the error
	raw  []byte // JSON
	hint string // what to do when a plaintext is found in it
}

// checkMetadata fails with [ErrPlaintext] when one of the blobs holds the
// content of a protected file, naming the blob, the JSON field and the
// protected path (never the content). The Gramine manifest is not searched:
// it holds only paths, digests, and names the converter chose.
func checkMetadata(blobs []metadataBlob, plain []plaintext) error {
	for _, b := range blobs {
		var doc any
		if err := json.Unmarshal(b.raw, &doc); err != nil {
			return fmt.Errorf("reading back %s: %w", b.name, err)
		}
		for _, pt := range plain {
			field := findString(doc, "", pt.data)
			if field == "" && !bytes.Contains(b.raw, pt.data) {
				continue
			}
			where := b.name
			if field != "" {
				where += ", field " + field
			}
			hint := b.hint
			if strings.HasPrefix(field, "history[") && strings.HasSuffix(field, ".created_by") {
				hint = "convert with --redact-history (Config.RedactHistory) to replace the build commands, or rebuild the image without the value"
			}
			return fmt.Errorf("%w: %s holds the content of protected %s; expected it only in the encrypted file: %s",
				ErrPlaintext, where, pt.path, hint)
		}
	}
	return nil
}

// findString returns the path (history[2].created_by, config.Env[0],
// config.Labels["k"]) of the first string or object key in the decoded
// JSON value v that contains s, or "".
func findString(v any, at string, s []byte) string {
	switch v := v.(type) {
	case string:
		if strings.Contains(v, string(s)) {
			return at
		}
	case []any:
		for i, e := range v {
			if f := findString(e, at+"["+strconv.Itoa(i)+"]", s); f != "" {
				return f
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			sub := at + "." + k
			if at == "" {
				sub = k
			}
			if !isIdent(k) {
				sub = at + "[" + strconv.Quote(k) + "]"
			}
			if strings.Contains(k, string(s)) {
				return sub
			}
			if f := findString(v[k], sub, s); f != "" {
				return f
			}
		}
	}
	return ""
}

// isIdent reports whether k can follow a dot in a field path.
func isIdent(k string) bool {
	return k != "" && !strings.ContainsFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	})
}
