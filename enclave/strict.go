package enclave

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decodeStrict decodes the single JSON value in b into v, rejecting unknown
// fields and anything but white space after the value.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("expected the end of the input after the JSON value, found more data")
	}
	return nil
}

// keyFrame is one open object or array while checkKeys walks a document.
type keyFrame struct {
	object bool
	isMap  bool                // object whose keys are data, not field names
	key    []byte              // object: the key whose value is being read
	keys   [][]byte            // struct object: keys seen so far
	mkeys  map[string]struct{} // map object: unescaped keys seen so far
}

// checkKeys closes the gaps encoding/json leaves in strict decoding. The
// decoder keeps the last of duplicate keys and matches field names without
// regard to case (including the Unicode folds ſ→s and K→k), so two parsers
// could read different manifests from the same signed bytes. checkKeys
// rejects any duplicate key, and in every object except the one at mapPath
// (a chain of keys from the top-level object) accepts only keys spelled in
// lowercase snake_case, as all field names of this package are.
//
// data must be valid JSON; checkKeys is run after a successful decode.
func checkKeys(data []byte, mapPath ...string) error {
	var stack []keyFrame
	expectKey := false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = pushFrame(stack, true, atPath(stack, mapPath))
			expectKey = true
		case '[':
			stack = pushFrame(stack, false, false)
			expectKey = false
		case '}', ']':
			if len(stack) == 0 {
				return errors.New("unbalanced JSON")
			}
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case '"':
			end := stringEnd(data, i)
			if end < 0 {
				return errors.New("unterminated JSON string")
			}
			if expectKey {
				if err := stack[len(stack)-1].addKey(data[i : end+1]); err != nil {
					return err
				}
				expectKey = false
			}
			i = end
		}
	}
	return nil
}

// pushFrame pushes a frame, reusing the key storage of an earlier frame at
// the same depth so that walking a long array of objects does not allocate.
func pushFrame(stack []keyFrame, object, isMap bool) []keyFrame {
	if len(stack) < cap(stack) {
		stack = stack[:len(stack)+1]
		f := &stack[len(stack)-1]
		f.object, f.isMap, f.key, f.keys, f.mkeys = object, isMap, nil, f.keys[:0], nil
		return stack
	}
	return append(stack, keyFrame{object: object, isMap: isMap})
}

// atPath reports whether an object opened now sits at mapPath.
func atPath(stack []keyFrame, mapPath []string) bool {
	if len(mapPath) == 0 || len(stack) != len(mapPath) {
		return false
	}
	for i, f := range stack {
		if !f.object || string(f.key) != mapPath[i] {
			return false
		}
	}
	return true
}

// addKey records quoted, the key literal including its quotes.
func (f *keyFrame) addKey(quoted []byte) error {
	key := quoted[1 : len(quoted)-1]
	if f.isMap {
		s := string(key)
		if bytes.IndexByte(key, '\\') >= 0 {
			if err := json.Unmarshal(quoted, &s); err != nil {
				return err
			}
		}
		if _, dup := f.mkeys[s]; dup {
			return fmt.Errorf("duplicate key %q", s)
		}
		if f.mkeys == nil {
			f.mkeys = make(map[string]struct{})
		}
		f.mkeys[s] = struct{}{}
		f.key = key
		return nil
	}
	if len(key) == 0 {
		return errors.New("empty object key")
	}
	for _, c := range key {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return fmt.Errorf("key %q is not spelled exactly like a field name (lowercase snake_case)", key)
		}
	}
	for _, k := range f.keys {
		if bytes.Equal(k, key) {
			return fmt.Errorf("duplicate key %q", key)
		}
	}
	f.keys = append(f.keys, key)
	f.key = key
	return nil
}

// stringEnd returns the index of the quote closing the JSON string that
// starts at data[start], or -1.
func stringEnd(data []byte, start int) int {
	for j := start + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}
