package enclave

import (
	"reflect"
	"testing"
)

// TestLauncherFieldTag: the tag a converter looks for in a launcher binary is the one
// encoding/json reads for the launcher record.
func TestLauncherFieldTag(t *testing.T) {
	f, _ := reflect.TypeFor[Manifest]().FieldByName("Launcher")
	if string(f.Tag) != LauncherFieldTag {
		t.Errorf("Manifest.Launcher's tag is %s, LauncherFieldTag %s", f.Tag, LauncherFieldTag)
	}
}
