package attested

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

var responseCases = []struct {
	name    string
	in      string
	status  int
	body    string
	close   bool
	id      string
	wantErr string
}{
	{name: "content length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}", status: 200, body: "{}", id: "r1"},
	{name: "chunked", in: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nTrailer: x\r\n\r\n", status: 200, body: "abcd"},
	{name: "connection close", in: "HTTP/1.1 503 Service Unavailable\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", status: 503, close: true},
	{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", close: true},
	{name: "until the end", in: "HTTP/1.1 404 Not Found\r\n\r\nnot found", status: 404, body: "not found", close: true},
	{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\n", status: 204},
	{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, body: "x"},
	{name: "interim", in: "HTTP/1.1 100 Continue\r\n\r\n", wantErr: "expected a final status code"},
	{name: "HTTP/2", in: "HTTP/2 200\r\n\r\n", wantErr: "expected HTTP/1.1"},
	{name: "no status", in: "HTTP/1.1\r\n\r\n", wantErr: "expected a final status code"},
	{name: "long status", in: "HTTP/1.1 2000 OK\r\n\r\n", wantErr: "expected a final status code"},
	{name: "folded header", in: "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", wantErr: "expected name: value"},
	{name: "header without colon", in: "HTTP/1.1 200 OK\r\nAb\r\n\r\n", wantErr: "expected name: value"},
	{name: "two lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", wantErr: "expected one non-negative number"},
	{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: "expected one non-negative number"},
	{name: "signed length", in: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", wantErr: "expected one non-negative number"},
	{name: "length and chunked", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantErr: "both Content-Length and chunked"},
	{name: "gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: "expected chunked"},
	{name: "body short", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", wantErr: "read body: unexpected EOF"},
	{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: "expected hex digits"},
	{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", wantErr: "chunk not followed by CRLF"},
	{name: "no end", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", wantErr: "read header: unexpected EOF"},
	{name: "nothing", in: "", wantErr: "read status line: unexpected EOF"},
	{name: "too large by length", in: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", wantErr: "answer too large"},
	{name: "too large chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + strings.Repeat("a", 65) + "\r\n0\r\n\r\n", wantErr: "answer too large"},
	{name: "too large until the end", in: "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("a", 65), wantErr: "answer too large"},
	{name: "header too long", in: "HTTP/1.1 200 OK\r\nA: " + strings.Repeat("b", 5000) + "\r\n\r\n", wantErr: "line longer than 4096 bytes"},
	{name: "too many fields", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: b\r\n", 101) + "\r\n", wantErr: "header larger than"},
}

func TestReadResponse(t *testing.T) {
	for _, tc := range responseCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)), 64)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readResponse(%q) = %+v, %v; want an error with %q", tc.in, r, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readResponse(%q): %v", tc.in, err)
			}
			if r.status != tc.status || string(r.body) != tc.body || r.close != tc.close || r.requestID != tc.id {
				t.Errorf("readResponse(%q) = status %d body %q close %v id %q; want %d %q %v %q", tc.in, r.status, r.body, r.close, r.requestID, tc.status, tc.body, tc.close, tc.id)
			}
		})
	}
}

// TestReadResponseKeepsTheNext: an answer is read to its end and no further, so the next one on
// the connection reads whole.
func TestReadResponseKeepsTheNext(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\ny\r\n0\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"))
	for _, want := range []struct {
		status int
		body   string
	}{{200, "x"}, {201, "y"}, {202, ""}} {
		r, err := readResponse(br, 64)
		if err != nil || r.status != want.status || string(r.body) != want.body {
			t.Fatalf("readResponse = %+v, %v; want %d %q", r, err, want.status, want.body)
		}
	}
}

// FuzzReadResponse: any input gives an answer within the bound or an error, never a panic nor
// both.
func FuzzReadResponse(f *testing.F) {
	for _, tc := range responseCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 64
		r, err := readResponse(bufio.NewReader(bytes.NewReader(in)), max)
		if err != nil {
			if r != nil {
				t.Fatalf("readResponse returned an answer with the error %v", err)
			}
			return
		}
		if len(r.body) > max || r.status < 200 || r.status > 599 {
			t.Fatalf("readResponse(%q) = status %d, %d-byte body; want 200-599 and at most %d bytes", in, r.status, len(r.body), max)
		}
	})
}
