package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/manifest"
)

// handlerFunc is an HTTP handler that returns its error; [Server.handle] renders it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one entry of an API's route table.
type route struct {
	pattern string // method and path, as net/http.ServeMux takes it
	maxBody int64  // request body bound in bytes; 0 = no body
	h       handlerFunc
}

func (s *Server) mux(apiName string, routes []route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.pattern, s.handle(apiName, rt))
	}
	mux.Handle("/", s.handle(apiName, route{pattern: "/", h: func(w http.ResponseWriter, r *http.Request) error {
		return &core.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no route %s %s", bounded(r.Method, 16), bounded(r.URL.Path, 80))}
	}}))
	return mux
}

// statusRecorder remembers the status code for metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// handle adapts a handlerFunc: it assigns a request ID, bounds the body, renders errors and
// counts the request.
func (s *Server) handle(apiName string, rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID()
		w.Header().Set(api.RequestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		r.Body = http.MaxBytesReader(rec, r.Body, rt.maxBody)
		var err error
		if s.core != nil {
			err = s.refresh(r.Context())
		}
		if err == nil {
			err = rt.h(rec, r)
		}
		if err != nil {
			s.writeError(rec, r, apiName, id, err)
		}
		s.reqs.WithLabelValues(apiName, rt.pattern, strconv.Itoa(rec.code)).Inc()
	})
}

// refreshTimeout bounds the read of the newest shared state before a request: a state the
// Coordinator cannot read (the API server or etcd is down) is a quick NOT_READY, which clients
// retry, not a request held until the read gives up.
const refreshTimeout = 5 * time.Second

// refresh brings the core to the newest shared state, if replicas share one.
func (s *Server) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	return s.core.Refresh(ctx)
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var codeStatus = map[string]int{
	api.CodeBadRequest:      http.StatusBadRequest,
	api.CodePayloadTooLarge: http.StatusRequestEntityTooLarge,
	api.CodeUnauthenticated: http.StatusUnauthorized,
	api.CodeForbidden:       http.StatusForbidden,
	api.CodeNotFound:        http.StatusNotFound,
	api.CodeNotReady:        http.StatusServiceUnavailable,
	api.CodeManifestInvalid: http.StatusUnprocessableEntity,
	api.CodeUnknownWorkload: http.StatusNotFound,
	api.CodeAttestation:     http.StatusUnauthorized,
	api.CodePolicy:          http.StatusForbidden,
	api.CodeActivationLimit: http.StatusConflict,
	// Governance.
	api.CodeConflict:         http.StatusConflict,
	api.CodeSignatureInvalid: http.StatusForbidden,
	// Recovery.
	api.CodeRecoveryMode: http.StatusServiceUnavailable,
}

// Bounds of an error message in a reply and in a log line. Messages bound each piece of input
// they repeat already (80 bytes); these are the backstop. A reply may list many problems of a
// manifest; a log line, which anyone can cause, stays short.
const (
	maxReplyMessage = 16 << 10
	maxLogMessage   = 2 << 10
)

// writeError renders err. Errors the caller caused say what was expected and found, and are
// logged at a bounded rate (see newRefusalLimiter); anything else is logged and answered with
// "internal error" and the request ID only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, apiName, id string, err error) {
	body := api.ErrorBody{Code: api.CodeInternal, Message: "internal error; see the Coordinator log for request " + id, RequestID: id}
	status := http.StatusInternalServerError
	if e, ok := errors.AsType[*core.Error](err); ok {
		body.Code, body.Message = e.Code, bounded(e.Message, maxReplyMessage)
		if st, ok := codeStatus[e.Code]; ok {
			status = st
		}
		s.logRefusal(r, apiName, id, e.Code, body.Message)
	} else if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		body.Code, status = api.CodePayloadTooLarge, http.StatusRequestEntityTooLarge
		body.Message = fmt.Sprintf("request body is larger than the %d bytes allowed for %s %s", mbe.Limit, bounded(r.Method, 16), bounded(r.URL.Path, 80))
		s.logRefusal(r, apiName, id, body.Code, body.Message)
	} else {
		s.log.Error("request failed", "request_id", id, "method", bounded(r.Method, 16), "path", bounded(r.URL.Path, 80), "error", bounded(err.Error(), maxLogMessage))
	}
	writeJSON(w, status, api.Error{Error: body})
}

// logRefusal logs a refused request unless refusals come faster than the log may take.
func (s *Server) logRefusal(r *http.Request, apiName, id, code, msg string) {
	ok, skipped := s.refusals[apiName].Allow(s.now())
	if !ok {
		s.unlogged.WithLabelValues(apiName).Inc()
		return
	}
	attrs := []any{"request_id", id, "api", apiName, "method", bounded(r.Method, 16), "path", bounded(r.URL.Path, 80), "code", code, "reason", bounded(msg, maxLogMessage)}
	if skipped > 0 {
		attrs = append(attrs, "refusals_not_logged_before", skipped)
	}
	s.log.Info("request refused", attrs...)
}

// bounded shortens s to at most n bytes (on a rune boundary), saying how long it was.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// decodeJSON decodes the request body into v as strictly as a manifest is decoded (see
// [manifest.DecodeStrict]): duplicate keys, unknown keys, wrong types and trailing data are
// errors that name the JSON path. The message keeps the first few problems, each bounded.
func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if err := manifest.DecodeStrict(b, v); err != nil {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: " + firstProblems(err), Err: err}
	}
	return nil
}

// readBody reads the whole request body. A body over the route's bound is a
// *http.MaxBytesError; one that ends early or arrives too slowly is the caller's doing, a
// refusal like any other (and rate-limited in the log like any other).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, err
	}
	if err != nil {
		return nil, &core.Error{Code: api.CodeBadRequest, Message: "request body: could not be read to its end: " + bounded(err.Error(), 200), Err: err}
	}
	return b, nil
}

// maxProblemsShown bounds how many decoding problems an error answer lists.
const maxProblemsShown = 5

func firstProblems(err error) string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var msgs []string
	for i, e := range errs {
		if i == maxProblemsShown {
			msgs = append(msgs, fmt.Sprintf("and %d more problems", len(errs)-i))
			break
		}
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}
