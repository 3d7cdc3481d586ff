package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/core"
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
		return &core.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)}
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
		if err := rt.h(rec, r); err != nil {
			s.writeError(rec, r, id, err)
		}
		s.reqs.WithLabelValues(apiName, rt.pattern, strconv.Itoa(rec.code)).Inc()
	})
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
}

// writeError renders err. Errors the caller caused say what was expected and found; anything
// else is logged and answered with "internal error" and the request ID only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, id string, err error) {
	body := api.ErrorBody{Code: api.CodeInternal, Message: "internal error; see the Coordinator log for request " + id, RequestID: id}
	status := http.StatusInternalServerError
	if e, ok := errors.AsType[*core.Error](err); ok {
		body.Code, body.Message = e.Code, e.Message
		if st, ok := codeStatus[e.Code]; ok {
			status = st
		}
		s.log.Info("request refused", "request_id", id, "method", r.Method, "path", r.URL.Path, "code", e.Code, "reason", e.Message)
	} else if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		body.Code, status = api.CodePayloadTooLarge, http.StatusRequestEntityTooLarge
		body.Message = fmt.Sprintf("request body is larger than the %d bytes allowed for %s %s", mbe.Limit, r.Method, r.URL.Path)
	} else {
		s.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "error", err.Error())
	}
	writeJSON(w, status, api.Error{Error: body})
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

// decodeJSON strictly decodes the request body into v: unknown fields and trailing data are
// errors that name what was found.
func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: " + jsonError(err)}
	}
	if dec.More() {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: unexpected data after the JSON object"}
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return &core.Error{Code: api.CodeBadRequest, Message: "request body: unexpected data after the JSON object"}
	}
	return nil
}

func jsonError(err error) string {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q: expected %s, found JSON %s", e.Field, e.Type, e.Value)
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("invalid JSON at byte %d: %v", e.Offset, e)
	}
	if errors.Is(err, io.EOF) {
		return "empty; expected a JSON object"
	}
	return err.Error()
}
