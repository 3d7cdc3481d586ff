package manifest

import (
	"bytes"
	_ "embed"
)

//go:embed schema/manifest-v1.json
var schemaV1 []byte

// Schema returns the JSON Schema (draft 2020-12) of manifest documents, the same document
// published as https://cloister.dev/schema/manifest-v1.json. Editors can use it for
// completion and checking; it checks structure only, so a document it accepts can still
// fail [Parse] (for example by naming a package that does not exist). The caller owns the
// returned slice.
func Schema() []byte { return bytes.Clone(schemaV1) }
