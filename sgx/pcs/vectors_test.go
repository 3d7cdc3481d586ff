package pcs_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func vectorFMSPC(t testing.TB, v *dcaptest.Vector) [6]byte {
	t.Helper()
	var fmspc [6]byte
	if n, err := hex.Decode(fmspc[:], []byte(v.PCK.FMSPC)); err != nil || n != 6 {
		t.Fatalf("vector %s: FMSPC %q: %v", v.Name, v.PCK.FMSPC, err)
	}
	return fmspc
}

// TestClientParsesRealBodies serves Intel's own response bodies and issuer chains in both API
// shapes and checks that the client returns them byte for byte.
func TestClientParsesRealBodies(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		for _, version := range []int{3, 4} {
			t.Run(fmt.Sprintf("%s/v%d", v.Name, version), func(t *testing.T) {
				f := newFakePCS(t, version, v.Dir)
				c := newClient(t, pcs.ClientConfig{BaseURL: f.url()})
				if want := v.File(t, "tcb_info"); want != nil {
					ti, chain, err := c.TCBInfo(t.Context(), vectorFMSPC(t, v))
					if err != nil {
						t.Fatalf("TCBInfo: %v", err)
					}
					if !bytes.Equal(ti.Raw(), want) || len(chain) != 2 || ti.Version != v.Collateral.TCBInfo.Version {
						t.Errorf("TCBInfo: %d chain certificates, version %d, same bytes %v", len(chain), ti.Version, bytes.Equal(ti.Raw(), want))
					}
				}
				if want := v.File(t, "qe_identity"); want != nil {
					qi, chain, err := c.QEIdentity(t.Context())
					if err != nil || !bytes.Equal(qi.Raw(), want) || len(chain) != 2 {
						t.Errorf("QEIdentity: %v", err)
					}
				}
				if want := v.File(t, "root_ca_crl"); want != nil {
					crl, err := c.RootCACRL(t.Context())
					if err != nil || !bytes.Equal(crl.Raw, want) {
						t.Errorf("RootCACRL: %v", err)
					}
				}
				if want := v.File(t, "pck_crl_issuer_chain"); want != nil {
					crl, chain, err := c.PCKCRL(t.Context(), sgx.PCKCAType(v.PCK.CAType))
					if err != nil || !bytes.Equal(crl.Raw, v.File(t, "pck_crl")) || len(chain) != 2 {
						t.Errorf("PCKCRL: %v", err)
					}
				}
			})
		}
	}
}

// TestProviderWithRealCollateral runs the provider pinned to Intel's root (the default) over
// the real collateral, at each vector's verification time, and verifies the real quote with
// what it serves.
func TestProviderWithRealCollateral(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		if v.Files["tcb_info"] == nil {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			version := 4
			if v.Collateral.TCBInfo.Version == 2 {
				version = 3 // TCB Info v2 is what API v3 serves
			}
			f := newFakePCS(t, version, v.Dir)
			clock := &testClock{t: v.VerificationTime}
			prov, err := pcs.NewProvider(pcs.ProviderConfig{Client: newClient(t, pcs.ClientConfig{BaseURL: f.url()}), Dir: t.TempDir()},
				pcs.WithClock(clock.now))
			if err != nil {
				t.Fatal(err)
			}
			col, err := prov.Collateral(t.Context(), vectorFMSPC(t, v), sgx.PCKCAType(v.PCK.CAType))
			if err != nil {
				t.Fatalf("Collateral: %v", err)
			}
			res, err := verify.New(verify.IntelRoot()).Verify(v.File(t, "quote"), col, v.VerificationTime)
			if err != nil {
				t.Fatalf("Verify with the provider's collateral: %v", err)
			}
			if want := v.Expected.TCBStatus; want == nil || string(res.Platform.TCBStatus) != *want {
				t.Errorf("TCB status %q; want %v", res.Platform.TCBStatus, want)
			}
			wantCRLs := v.Files["root_ca_crl"] != nil && v.Files["pck_crl_issuer_chain"] != nil
			if res.Platform.CRLChecked != wantCRLs {
				t.Errorf("CRLChecked = %v; want %v", res.Platform.CRLChecked, wantCRLs)
			}
			// The simulated root is not Intel's: the same bytes are refused under it.
			plat := newPlatform(t, sgx.PCKCAProcessor)
			other, err := pcs.NewProvider(pcs.ProviderConfig{Client: newClient(t, pcs.ClientConfig{BaseURL: f.url()}), Root: plat.Root()},
				pcs.WithClock(clock.now))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Collateral(t.Context(), vectorFMSPC(t, v), sgx.PCKCAType(v.PCK.CAType)); err == nil {
				t.Error("a provider pinned to a simulated root accepted Intel's collateral")
			}
		})
	}
}
