package attested

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// HTTP/1.1 answers are read here rather than with net/http: the launcher makes two requests per
// start, and net/http (with its HTTP/2 client, MIME and IDNA tables, gzip) is a third of its
// binary, which every image carries and every start pages in.

// Bounds of an answer's framing.
const (
	maxHeaderBytes = 64 << 10 // the status line and header fields together
	maxHeaderLines = 100
)

// response is an HTTP/1.1 answer, as much of it as the SDK uses.
type response struct {
	status    int
	requestID string // the X-Request-Id field
	// close says the server closes the connection after this answer (Connection: close, an
	// HTTP/1.0 answer, or a body that ends with the connection).
	close bool
	body  []byte
}

// errTooLarge is wrapped by readResponse's error for an answer whose body is larger than allowed.
var errTooLarge = errors.New("answer too large")

// readResponse reads one answer from br: the status line, the header fields, and the body,
// framed by chunked transfer coding, Content-Length, or the end of the connection; a body larger
// than maxBody is an error wrapping errTooLarge. Interim (1xx) answers, obsolete line folding and
// conflicting framing are errors: the Coordinator sends none of them.
func readResponse(br *bufio.Reader, maxBody int) (*response, error) {
	r := &response{}
	line, err := readLine(br)
	if err != nil {
		return nil, fmt.Errorf("read status line: %w", err)
	}
	proto, rest, ok1 := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.close = true
	default:
		return nil, fmt.Errorf("status line %q: expected HTTP/1.1", bounded(line))
	}
	if r.status, err = strconv.Atoi(string(code)); !ok1 || err != nil || len(code) != 3 || r.status < 200 || r.status > 599 {
		return nil, fmt.Errorf("status line %q: expected a final status code (200-599)", bounded(line))
	}
	length, chunked := -1, false
	size := len(line)
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("read header: %w", err)
		}
		if len(line) == 0 {
			break
		}
		if size += len(line); size > maxHeaderBytes || n >= maxHeaderLines {
			return nil, fmt.Errorf("header larger than %d bytes or %d fields", maxHeaderBytes, maxHeaderLines)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("header line %q: expected name: value", bounded(line))
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "Content-Length"):
			v, err := strconv.Atoi(string(value))
			if err != nil || v < 0 || (length >= 0 && v != length) || bytes.ContainsAny(value, "+-") {
				return nil, fmt.Errorf("Content-Length %q: expected one non-negative number", bounded(value))
			}
			length = v
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !asciiEqualFold(value, "chunked") || chunked {
				return nil, fmt.Errorf("Transfer-Encoding %q: expected chunked, once", bounded(value))
			}
			chunked = true
		case asciiEqualFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if asciiEqualFold(bytes.Trim(tok, " \t"), "close") {
					r.close = true
				}
			}
		case asciiEqualFold(name, "X-Request-Id"):
			r.requestID = string(value)
		}
	}
	switch {
	case chunked && length >= 0:
		return nil, errors.New("answer has both Content-Length and chunked Transfer-Encoding")
	case r.status == 204 || r.status == 304:
		if length > 0 || chunked {
			return nil, fmt.Errorf("answer %d has a body", r.status)
		}
	case chunked:
		r.body, err = readChunked(br, maxBody)
	case length >= 0:
		if length > maxBody {
			return nil, fmt.Errorf("%w: Content-Length %d, at most %d bytes expected", errTooLarge, length, maxBody)
		}
		r.body = make([]byte, length)
		_, err = io.ReadFull(br, r.body)
	default: // delimited by the end of the connection
		r.close = true
		r.body, err = io.ReadAll(io.LimitReader(br, int64(maxBody)+1))
		if err == nil && len(r.body) > maxBody {
			err = fmt.Errorf("%w: more than %d bytes", errTooLarge, maxBody)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return r, nil
}

// readChunked reads a chunked body and its trailer, which it ignores.
func readChunked(br *bufio.Reader, maxBody int) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		hexSize, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions are ignored
		hexSize = bytes.TrimRight(hexSize, " \t")
		n, err := strconv.ParseUint(string(hexSize), 16, 31)
		if err != nil || len(hexSize) == 0 || bytes.ContainsAny(hexSize, "+-_xX") {
			return nil, fmt.Errorf("chunk size %q: expected hex digits", bounded(line))
		}
		if n == 0 {
			break
		}
		if uint64(len(body))+n > uint64(maxBody) {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, maxBody)
		}
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(br, body[len(body)-int(n):]); err != nil {
			return nil, err
		}
		if crlf, err := readLine(br); err != nil || len(crlf) != 0 {
			return nil, errors.New("chunk not followed by CRLF")
		}
	}
	for n := 0; ; n++ { // the trailer
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return body, nil
		}
		if n >= maxHeaderLines {
			return nil, fmt.Errorf("trailer longer than %d fields", maxHeaderLines)
		}
	}
}

// readLine reads a line ending in CRLF (or LF) of at most the reader's buffer size, without the
// line end. The line is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("line longer than %d bytes", br.Size())
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// asciiEqualFold reports whether b is s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// bounded quotes at most 80 bytes of b in an error.
func bounded(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
