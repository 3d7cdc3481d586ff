package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrTooLarge is wrapped by the error [Parse] returns for a document larger than [MaxSize],
// and by the error [Manifest.Render] returns when rendered output exceeds
// [MaxRenderedValue] or [MaxRenderedTotal]. Match it with errors.Is.
var ErrTooLarge = errors.New("too large")

// maxProblems bounds how many problems one Parse or Validate reports, so that a hostile
// document cannot produce an unbounded error. Further problems are counted in one summary.
const maxProblems = 1000

// FieldError is one problem with a manifest, found while decoding, validating or rendering it.
//
// Path locates the offending value as a JSON path: "$" is the document, ".key" selects an
// object member whose key is a letter or underscore followed by letters, digits or
// underscores, `["key"]` (a JSON string) selects any other member and "[3]" an array element;
// for example $.workloads.server.package or $.workloads.server.files["/etc/app.conf"].
// Msg says what was expected and what was found; it never contains secret values.
// Err, when not nil, is a cause that errors.Is and errors.As can reach (for example
// [ErrTooLarge]).
//
// Parse, Validate and Render return a *FieldError, or several joined with errors.Join; find
// them with errors.AsType[*FieldError] or by unwrapping the join.
type FieldError struct {
	Path string
	Msg  string
	Err  error
}

// Error returns "Path: Msg".
func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap returns the cause, if any.
func (e *FieldError) Unwrap() error { return e.Err }

// problems collects FieldErrors in the order they are found, up to maxProblems.
type problems struct {
	errs    []error
	dropped int
}

// add records a problem at path p.
func (ps *problems) add(p, format string, args ...any) {
	ps.addErr(&FieldError{Path: p, Msg: fmt.Sprintf(format, args...)})
}

// addErr records an error that is already a *FieldError (or a join of them).
func (ps *problems) addErr(err error) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			ps.addErr(e)
		}
		return
	}
	if len(ps.errs) >= maxProblems {
		ps.dropped++
		return
	}
	ps.errs = append(ps.errs, err)
}

// len reports how many problems were found, including dropped ones.
func (ps *problems) len() int { return len(ps.errs) + ps.dropped }

// err returns the problems joined, or nil when there were none.
func (ps *problems) err() error {
	if ps.dropped > 0 {
		errs := append(ps.errs[:len(ps.errs):len(ps.errs)], &FieldError{
			Path: "$",
			Msg:  fmt.Sprintf("%d more problems not shown; fix the ones above first", ps.dropped),
		})
		return errors.Join(errs...)
	}
	return errors.Join(ps.errs...)
}

var shorthandKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// keyPath returns the path of member key of the object at p. A key longer than maxQuoted
// bytes is shortened, so paths stay bounded whatever the input.
func keyPath(p, key string) string {
	if len(key) <= maxQuoted && shorthandKey.MatchString(key) {
		return p + "." + key
	}
	return p + "[" + quote(key) + "]"
}

// indexPath returns the path of element i of the array at p.
func indexPath(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

// maxQuoted bounds how much of an input string an error message repeats.
const maxQuoted = 80

// quote returns s as a quoted string for messages, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// maxListed bounds how many names a message lists.
const maxListed = 20

// nameList formats sorted names for a message such as "defined packages: db, web".
func nameList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, n := range names {
		if i == maxListed {
			fmt.Fprintf(&b, ", … (%d more)", len(names)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if len(n) > maxQuoted {
			n = quote(n)
		}
		b.WriteString(n)
	}
	return b.String()
}
