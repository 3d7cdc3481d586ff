package pcs

import "testing"

func TestRootCACRLURL(t *testing.T) {
	for base, want := range map[string]string{
		IntelPCSURL: IntelRootCACRLURL,
		"https://api.trustedservices.intel.com/sgx/certification/v3/": IntelRootCACRLURL,
		"https://pccs.example:8081/sgx/certification/v4/":             "https://pccs.example:8081/sgx/certification/v4/rootcacrl",
	} {
		c, err := NewClient(ClientConfig{BaseURL: base})
		if err != nil {
			t.Fatal(err)
		}
		if c.rootCRLURL != want {
			t.Errorf("root CA CRL URL for %s = %s; want %s", base, c.rootCRLURL, want)
		}
	}
	c, err := NewClient(ClientConfig{BaseURL: IntelPCSURL, RootCACRLURL: "https://mirror.example/root.crl"})
	if err != nil || c.rootCRLURL != "https://mirror.example/root.crl" {
		t.Errorf("configured root CA CRL URL: %v, %q", err, c.rootCRLURL)
	}
}

func TestParseDirName(t *testing.T) {
	k := cacheKey{fmspc: [6]byte{0, 0x90, 0x6e, 0xd5, 0, 0}, ca: "platform"}
	if got, ok := parseDirName(k.dirName()); !ok || got != k {
		t.Errorf("parseDirName(%q) = %v, %v; want %v", k.dirName(), got, ok, k)
	}
	for _, name := range []string{"00906ed50000-platform", "00906ED50000-other", "00906ED500-platform", "00906ED50000", "ZZ906ED50000-processor"} {
		if _, ok := parseDirName(name); ok {
			t.Errorf("parseDirName(%q) accepted it", name)
		}
	}
}
