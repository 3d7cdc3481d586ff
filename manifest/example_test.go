package manifest_test

import (
	"fmt"
	"log"

	"github.com/cloister-dev/cloister/manifest"
)

func Example() {
	m, err := manifest.Parse([]byte(`{
	  "packages": {"web": {"mrenclave": "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"}},
	  "workloads": {"server": {
	    "package": "web",
	    "env": {"API_KEY": "{{.Secrets.api_key.Hex}}", "MODE": "production"},
	    "argv": ["/usr/bin/server", "--id={{.Workload.SPIFFEID}}"]
	  }},
	  "secrets": {"api_key": {"type": "symmetric-key", "size": 128}}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("secrets:", m.SecretsUsedBy("server"))
	out, err := m.Render("server", manifest.RenderInput{
		Secrets: map[string]manifest.SecretValue{"api_key": {Bytes: []byte("0123456789abcdef")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Env["API_KEY"], out.Env["MODE"])
	fmt.Println(out.Argv)

	_, err = manifest.Parse([]byte(`{"workloads": {"server": {"package": "webx"}}}`))
	fmt.Println(err)
	// Output:
	// secrets: [api_key]
	// 30313233343536373839616263646566 production
	// [/usr/bin/server --id=spiffe://cloister.internal/server]
	// $.workloads.server.package: unknown package "webx"; defined packages: (none)
}
