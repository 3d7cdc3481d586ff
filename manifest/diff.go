package manifest

import (
	"maps"
	"reflect"
	"slices"
)

// ChangeKind says how a value differs between two manifests.
type ChangeKind string

// The kinds of change.
const (
	// Added: the value is in the new manifest only.
	Added ChangeKind = "added"
	// Removed: the value is in the old manifest only.
	Removed ChangeKind = "removed"
	// Changed: the value is in both and differs.
	Changed ChangeKind = "changed"
)

// Change is one difference between two manifests. It names where, never what: values are
// left out so that a diff is safe to show even when secrets changed.
type Change struct {
	// Path is the JSON path of the value, as in [FieldError].
	Path string `json:"path"`
	// Kind says how it differs.
	Kind ChangeKind `json:"kind"`
}

// String returns "kind path", for example "changed $.workloads.server.argv".
func (c Change) String() string { return string(c.Kind) + " " + c.Path }

// Diff lists the differences between two manifests, after applying defaults to both (so
// writing a default out is no change). A nil Manifest counts as the empty one; "$schema" is
// ignored.
//
// Objects are compared member by member; an entry of packages, workloads, secrets, users,
// roles, env or files that exists on one side only is one Added or Removed change. Arrays
// and other values are compared whole: a value absent on one side is Added or Removed,
// present on both but different is Changed. Changes come in document order: keys of a
// fixed object in the order of the reference documentation, keys of a map sorted bytewise.
// The result is nil when the manifests mean the same.
func Diff(old, new *Manifest) []Change {
	var out []Change
	a, b := normalized(old), normalized(new)
	diffValue("$", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), &out)
	return out
}

// normalized returns a copy of m with defaults applied; m is not modified.
func normalized(m *Manifest) *Manifest {
	var c Manifest
	if m != nil {
		c = *m
		c.Packages = maps.Clone(m.Packages)
		c.Secrets = maps.Clone(m.Secrets)
	}
	c.applyDefaults()
	return &c
}

func diffValue(p string, a, b reflect.Value, out *[]Change) {
	switch a.Kind() {
	case reflect.Struct:
		for _, f := range jsonFields(a.Type()) {
			if f.name != "$schema" {
				diffValue(keyPath(p, f.name), a.Field(f.index), b.Field(f.index), out)
			}
		}
		return
	case reflect.Map:
		keys := slices.Sorted(maps.Keys(mapKeySet(a, b)))
		for _, k := range keys {
			kv := reflect.ValueOf(k).Convert(a.Type().Key())
			av, bv := a.MapIndex(kv), b.MapIndex(kv)
			switch {
			case !av.IsValid():
				*out = append(*out, Change{keyPath(p, k), Added})
			case !bv.IsValid():
				*out = append(*out, Change{keyPath(p, k), Removed})
			default:
				diffValue(keyPath(p, k), av, bv, out)
			}
		}
		return
	case reflect.Pointer, reflect.Slice:
		absentA, absentB := absent(a), absent(b)
		switch {
		case absentA && absentB:
		case absentA:
			*out = append(*out, Change{p, Added})
		case absentB:
			*out = append(*out, Change{p, Removed})
		case !reflect.DeepEqual(a.Interface(), b.Interface()):
			*out = append(*out, Change{p, Changed})
		}
		return
	}
	if !a.Equal(b) {
		*out = append(*out, Change{p, Changed})
	}
}

// absent reports whether a pointer is nil or a slice is empty; an empty list and a missing
// one mean the same everywhere except under a pointer (advisories), which is compared whole.
func absent(v reflect.Value) bool {
	if v.Kind() == reflect.Pointer {
		return v.IsNil()
	}
	return v.Len() == 0
}

func mapKeySet(a, b reflect.Value) map[string]struct{} {
	keys := make(map[string]struct{}, a.Len()+b.Len())
	for _, m := range []reflect.Value{a, b} {
		for it := m.MapRange(); it.Next(); {
			keys[it.Key().String()] = struct{}{}
		}
	}
	return keys
}
