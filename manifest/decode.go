package manifest

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// The decoder below walks the JSON token stream alongside the Go types of the manifest.
// encoding/json alone would not do: its errors leave map keys out of the path, it accepts
// duplicate keys (the last one wins, so a reviewer and the Coordinator could read different
// values) and it stops at the first problem. This one reports every structural problem with
// its JSON path, and accepts null only for fields tagged manifest:"nullable".

// errStop ends decoding after a syntax error; the error itself is already recorded.
var errStop = errors.New("stop decoding")

type decoder struct {
	src     []byte // the document, for positions in messages
	dec     *json.Decoder
	probs   problems
	present map[string]struct{} // paths of the struct members found in the document
}

// DecodeStrict decodes the single JSON value in b into v, a pointer, as strictly as a manifest
// is decoded: duplicate keys, unknown keys, null (unless a field is tagged
// manifest:"nullable"), values of the wrong type and data after the value are errors, each a
// [*FieldError] naming its JSON path. Byte slices are standard base64 with padding, as
// encoding/json writes them. The Coordinator decodes every API body with it, so that no part of
// the system reads a document differently from another. v's types may use structs, maps with
// string keys, slices, strings, booleans, integers, byte slices and encoding.TextUnmarshaler.
func DecodeStrict(b []byte, v any) error {
	_, err := decodeStrict(b, v, "JSON value")
	return err
}

// decodeStrict decodes the single JSON value in b into v, a pointer. It returns the paths of
// the struct members the document contains, so that validation can tell a key given its zero
// value from an absent one.
// what names the document in messages ("manifest object").
func decodeStrict(b []byte, v any, what string) (present map[string]struct{}, err error) {
	d := &decoder{src: b, dec: json.NewDecoder(bytes.NewReader(b)), present: make(map[string]struct{})}
	d.dec.UseNumber()
	if err := d.value("$", reflect.ValueOf(v).Elem(), false); err == nil {
		off := d.dec.InputOffset()
		if _, err := d.dec.Token(); err != io.EOF {
			rest := b[off:]
			next := off + int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n")))
			d.probs.add("$", "expected nothing after the %s, found more data at byte %d (the next value starts at %s)", what, off, d.position(next))
		}
	}
	return d.present, d.probs.err()
}

// value decodes the next JSON value into v.
func (d *decoder) value(p string, v reflect.Value, nullable bool) error {
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax(p, err)
	}
	if tok == nil {
		if nullable {
			v.SetZero()
		} else {
			d.probs.add(p, "expected %s, found null", expected(v.Type()))
		}
		return nil
	}
	return d.token(p, tok, v)
}

// token decodes the value that starts with tok into v.
func (d *decoder) token(p string, tok json.Token, v reflect.Value) error {
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		elem := reflect.New(t.Elem())
		if err := d.token(p, tok, elem.Elem()); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := tok.(string)
		if !ok {
			return d.mismatch(p, t, tok)
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.probs.add(p, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			return d.mismatch(p, t, tok)
		}
		return d.structObject(p, v)
	case reflect.Map:
		if tok != json.Delim('{') {
			return d.mismatch(p, t, tok)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		return d.object(p, func(key string) error {
			elem := reflect.New(t.Elem()).Elem()
			if err := d.value(keyPath(p, key), elem, false); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
			return nil
		})
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return d.bytes(p, tok, v)
		}
		if tok != json.Delim('[') {
			return d.mismatch(p, t, tok)
		}
		s := reflect.MakeSlice(t, 0, 0)
		for i := 0; d.dec.More(); i++ {
			elem := reflect.New(t.Elem()).Elem()
			if err := d.value(indexPath(p, i), elem, false); err != nil {
				return err
			}
			s = reflect.Append(s, elem)
		}
		if _, err := d.dec.Token(); err != nil { // ']'
			return d.syntax(p, err)
		}
		v.Set(s)
		return nil
	case reflect.String:
		s, ok := tok.(string)
		if !ok {
			return d.mismatch(p, t, tok)
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := tok.(bool)
		if !ok {
			return d.mismatch(p, t, tok)
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := tok.(json.Number)
		if !ok {
			return d.mismatch(p, t, tok)
		}
		d.integer(p, n, v)
		return nil
	}
	// The manifest types use only the kinds above; reaching here is a bug in this package.
	panic(fmt.Sprintf("manifest: decoder does not support %v at %s", t, p))
}

// bytes decodes a base64 string into the byte slice v.
func (d *decoder) bytes(p string, tok json.Token, v reflect.Value) error {
	s, ok := tok.(string)
	if !ok {
		return d.mismatch(p, v.Type(), tok)
	}
	// Strict: padding bits must be zero, and no line breaks (which the decoder would skip), so
	// that each value has exactly one encoding.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err == nil && strings.ContainsAny(s, "\r\n") {
		err = errors.New("line breaks")
	}
	if err != nil {
		d.probs.add(p, "expected standard base64 with padding, found a string that is not (%v)", err)
		return nil
	}
	v.SetBytes(b)
	return nil
}

// integer stores the JSON number n into the integer v.
func (d *decoder) integer(p string, n json.Number, v reflect.Value) {
	s := string(n)
	if strings.ContainsAny(s, ".eE") {
		d.probs.add(p, "expected %s, found a number with a fraction or exponent", expected(v.Type()))
		return
	}
	if v.CanUint() {
		u, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			d.probs.add(p, "expected %s, found %s", expected(v.Type()), quoteNumber(s))
			return
		}
		v.SetUint(u)
		return
	}
	i, err := strconv.ParseInt(s, 10, v.Type().Bits())
	if err != nil {
		d.probs.add(p, "expected %s, found %s", expected(v.Type()), quoteNumber(s))
		return
	}
	v.SetInt(i)
}

// structObject decodes an object into the struct v, rejecting unknown keys.
func (d *decoder) structObject(p string, v reflect.Value) error {
	fields := jsonFields(v.Type())
	return d.object(p, func(key string) error {
		i := slices.IndexFunc(fields, func(f jsonField) bool { return f.name == key })
		if i < 0 {
			d.probs.add(keyPath(p, key), "unknown key %s; expected one of: %s", quote(key), fieldNames(fields))
			return d.skip(p)
		}
		f, fp := fields[i], keyPath(p, key)
		d.present[fp] = struct{}{}
		return d.value(fp, v.Field(f.index), f.nullable)
	})
}

// object reads the members of an object whose '{' was read, calling each for every key
// with the decoder positioned at the member's value. Duplicate keys are reported and
// their values skipped.
func (d *decoder) object(p string, each func(key string) error) error {
	seen := make(map[string]struct{})
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(p, err)
		}
		key := tok.(string) // json.Decoder only returns string tokens in key position
		if _, dup := seen[key]; dup {
			d.probs.add(keyPath(p, key), "expected each key once, found %s again", quote(key))
			if err := d.skip(p); err != nil {
				return err
			}
			continue
		}
		seen[key] = struct{}{}
		if err := each(key); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil { // '}'
		return d.syntax(p, err)
	}
	return nil
}

// mismatch reports a value of the wrong JSON type and skips the rest of it.
func (d *decoder) mismatch(p string, t reflect.Type, tok json.Token) error {
	d.probs.add(p, "expected %s, found %s", expected(t), found(tok))
	if tok == json.Delim('{') || tok == json.Delim('[') {
		return d.skipRest(p, 1)
	}
	return nil
}

// skip skips the next value.
func (d *decoder) skip(p string) error { return d.skipRest(p, 0) }

// skipRest skips tokens until depth open objects and arrays are closed, or one whole value
// when depth is 0.
// maxSkipDepth bounds the nesting of a value that is skipped (an unknown key's, or one of the
// wrong type). The decoder's own types nest only a few levels; without a bound, megabytes of
// "[" would grow json.Decoder's stack by as many entries.
const maxSkipDepth = 64

func (d *decoder) skipRest(p string, depth int) error {
	for {
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(p, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			if depth > maxSkipDepth {
				d.probs.add(p, "expected at most %d levels of nested objects and arrays, found more", maxSkipDepth)
				return errStop
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// syntax records a JSON syntax error found while decoding the value at p and returns
// errStop.
func (d *decoder) syntax(p string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		d.probs.add(p, "expected more JSON, found the end of the document")
	} else if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		// Offset counts the bytes read before the offending one: it is the offending byte's offset.
		d.probs.add(p, "invalid JSON at byte %d: %s (%s)", se.Offset, strings.TrimPrefix(se.Error(), "json: "), d.position(se.Offset))
	} else {
		d.probs.add(p, "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errStop
}

// position gives the line and column of the byte at offset off of the document as editors
// count them, "line 3, column 9": lines and columns from 1, columns in characters.
func (d *decoder) position(off int64) string {
	off = min(max(off, 0), int64(len(d.src)))
	before := d.src[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// expected names the JSON a Go type accepts.
func expected(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return fmt.Sprintf("an integer from 0 to %d", uint64(1)<<t.Bits()-1)
	default:
		return "an integer"
	}
}

// found names the JSON type of a token.
func found(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('{') {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "null"
}

// quoteNumber shows a number from the input in a message, shortened like quote.
func quoteNumber(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + fmt.Sprintf("… (%d digits)", len(s))
}

// jsonField is a struct field as the decoder sees it.
type jsonField struct {
	name     string
	index    int
	nullable bool
}

var fieldCache sync.Map // reflect.Type -> []jsonField

// jsonFields lists the JSON members of struct type t, in field order.
func jsonFields(t reflect.Type) []jsonField {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]jsonField)
	}
	var fields []jsonField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		fields = append(fields, jsonField{name: name, index: i, nullable: sf.Tag.Get("manifest") == "nullable"})
	}
	fieldCache.Store(t, fields)
	return fields
}

func fieldNames(fields []jsonField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}
