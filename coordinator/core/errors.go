package core

import (
	"errors"
	"fmt"

	"github.com/cloister-dev/cloister/api"
)

// Error is an error a caller of the Coordinator caused or must know about. Code is one of the
// api.Code* values; Message says what was expected and what was found and never holds a secret.
type Error struct {
	Code    string
	Message string
	Err     error // the cause, for logs; may be nil
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code string, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrNotReady is wrapped by errors returned while the Coordinator cannot serve a request yet
// (no manifest, or a secret the workload needs has not been uploaded). Launchers retry.
var ErrNotReady = errors.New("not ready")

func notReady(format string, args ...any) *Error {
	return &Error{Code: api.CodeNotReady, Message: fmt.Sprintf(format, args...), Err: ErrNotReady}
}
