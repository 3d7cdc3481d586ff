package core

import (
	"encoding/hex"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// packagePolicy turns a validated manifest package into a quote policy. Validation already
// checked the hex strings, so decoding cannot fail here.
func packagePolicy(p manifest.Package) *verify.Policy {
	pol := &verify.Policy{
		AllowDebug:  p.Debug,
		TCBStatuses: p.TCBStatuses,
	}
	if p.Advisories != nil {
		pol.Advisories = append([]string{}, *p.Advisories...)
	}
	if p.MREnclave != "" {
		var m [32]byte
		hex.Decode(m[:], []byte(p.MREnclave))
		pol.MREnclave = [][32]byte{m}
		return pol
	}
	var s [32]byte
	hex.Decode(s[:], []byte(p.MRSigner))
	pol.MRSigner = s
	pol.ISVProdID = *p.ISVProdID
	pol.MinISVSVN = *p.MinISVSVN
	return pol
}
