package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/spf13/cobra"
)

// outputFormat is the value of --output. It is checked when the flag is parsed, so that a wrong
// value is a usage error like any other bad flag.
type outputFormat string

func (f *outputFormat) String() string { return string(*f) }
func (f *outputFormat) Type() string   { return "format" }

func (f *outputFormat) Set(s string) error {
	if s != "text" && s != "json" {
		return fmt.Errorf("%q: expected text or json", s)
	}
	*f = outputFormat(s)
	return nil
}

// outputFlag is the --output flag of every read command, and the one printer they all use:
// text for people, or one JSON document of a type in package jsonoutput.
type outputFlag struct{ format outputFormat }

func (o *outputFlag) register(cmd *cobra.Command) {
	o.format = "text"
	cmd.Flags().VarP(&o.format, "output", "o", "output format: text or json (see docs/cli/json.md)")
}

// print writes v as indented JSON in JSON mode, or calls text otherwise. v is one of the
// documents of package jsonoutput.
func (o *outputFlag) print(w io.Writer, v any, text func(io.Writer)) error {
	if o.format == "json" {
		return writeJSON(w, v)
	}
	text(w)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// codedError gives err one of the jsonoutput.Code* codes for JSON mode.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode gives err the code shown in JSON mode.
func withCode(code string, err error) error { return &codedError{code: code, err: err} }

// usageError marks err as a mistake in the command line.
func usageError(err error) error { return withCode(jsonoutput.CodeUsage, err) }

// errorDocument is the JSON form of err. The Coordinator's own codes come first, then a failure
// to reach it, then the codes the CLI gave.
func errorDocument(err error) jsonoutput.Error {
	body := jsonoutput.ErrorBody{Code: jsonoutput.CodeFailed, Message: err.Error()}
	if e, ok := errors.AsType[*client.APIError](err); ok {
		body.Code, body.RequestID = e.Code, e.RequestID
		if body.Code == "" {
			body.Code = jsonoutput.CodeCoordinatorError
		}
	} else if unreachable(err) {
		body.Code = jsonoutput.CodeUnreachable
	} else if e, ok := errors.AsType[*codedError](err); ok {
		body.Code = e.code
	}
	return jsonoutput.Error{Error: body}
}

// unreachable reports whether err is a failure to connect: nothing was sent.
func unreachable(err error) bool {
	if _, ok := errors.AsType[*client.DialError](err); ok {
		return true
	}
	e, ok := errors.AsType[*net.OpError](err)
	return ok && e.Op == "dial"
}

// jsonRequested reports whether the command line asked for JSON output: cmd's --output flag if
// it was parsed, else the words themselves, for errors found before or while parsing flags
// (and for commands that have no --output, which then fail as asked).
func jsonRequested(cmd *cobra.Command, args []string) bool {
	if cmd != nil {
		if f := cmd.Flags().Lookup("output"); f != nil && f.Changed {
			return f.Value.String() == "json"
		}
	}
	for i, s := range args {
		switch {
		case s == "--":
			return false
		case s == "--output=json" || s == "-o=json" || s == "-ojson":
			return true
		case (s == "--output" || s == "-o") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}
