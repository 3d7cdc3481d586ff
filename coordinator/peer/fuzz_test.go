package peer

import (
	"bytes"
	"os"
	"testing"

	"github.com/cloister-dev/cloister/store"
)

var testTemp string

// tempDir is a directory removed when the tests end (TestMain).
func tempDir() (string, error) {
	var err error
	testTemp, err = os.MkdirTemp("", "peer-test-")
	return testTemp, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testTemp != "" {
		os.RemoveAll(testTemp)
	}
	os.Exit(code)
}

// FuzzParseKeyAnswer: any payload parses to an answer that encodes back to it, or an error.
func FuzzParseKeyAnswer(f *testing.F) {
	f.Add((&keyAnswer{quote: []byte("q"), key: testKey, seen: store.Version{N: 3}}).encode())
	f.Add((&keyAnswer{quote: bytes.Repeat([]byte{9}, 5000), key: testKey}).encode())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := parseKeyAnswer(p)
		if err != nil {
			return
		}
		if len(a.key) != KeySize || len(a.quote) == 0 {
			t.Fatalf("parsed a key of %d bytes and a quote of %d", len(a.key), len(a.quote))
		}
		if !bytes.Equal(a.encode(), p) {
			t.Fatal("the answer does not encode back to its payload")
		}
	})
}

// FuzzReadFrame: any bytes give a frame within MaxFrame of an expected type, or an error.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, frameKey, []byte("payload"))
	f.Add(b.Bytes())
	f.Add([]byte{frameRequest, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{9, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		typ, p, err := readFrame(bytes.NewReader(raw), frameKey, frameRefused)
		if err != nil {
			return
		}
		if (typ != frameKey && typ != frameRefused) || len(p) > MaxFrame {
			t.Fatalf("read a frame of type %d and %d bytes", typ, len(p))
		}
		_ = refusal(p)
	})
}
