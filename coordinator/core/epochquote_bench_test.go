package core_test

import (
	"testing"

	"github.com/cloister-dev/cloister/internal/coordtest"
)

// BenchmarkQuote compares what verifying it costs the Coordinator per launcher connection:
// "nonce", a quote over the caller's nonce, made and verified by the Coordinator each time (on
// SGX hardware its Quoting Enclave adds milliseconds), and "epoch", the shared quote of the
// current epoch, made once per epoch and then handed out encoded.
func BenchmarkQuote(b *testing.B) {
	c := coordtest.Start(b)
	b.Run("nonce", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Core.Quote(b.Context(), [32]byte{1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("epoch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Core.EpochQuote(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
