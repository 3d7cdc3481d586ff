package manifest

import "testing"

// TestValidateExecAndReloadSignal: exec and reload_signal parse into the workload, the reload
// signal is one of a fixed list, and it makes no sense with exec, where nothing renews.
func TestValidateExecAndReloadSignal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields obj
		path   string // "" means accepted
		msg    string
	}{
		{"supervised, no signal", obj{}, "", ""},
		{"supervised, SIGHUP", obj{"reload_signal": "SIGHUP"}, "", ""},
		{"supervised, SIGUSR2", obj{"reload_signal": "SIGUSR2"}, "", ""},
		{"exec", obj{"exec": true}, "", ""},
		{"unknown signal", obj{"reload_signal": "SIGKILL"}, `$.workloads.server.reload_signal`, `expected one of SIGHUP, SIGUSR1, SIGUSR2, found "SIGKILL"`},
		{"lower case", obj{"reload_signal": "hup"}, `$.workloads.server.reload_signal`, `found "hup"`},
		{"signal with exec", obj{"exec": true, "reload_signal": "SIGHUP"}, `$.workloads.server.reload_signal`, `expected none with exec: true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := baseDoc(t)
			for k, v := range tc.fields {
				at(d, "workloads", "server")[k] = v
			}
			m, err := Parse(marshal(t, d))
			if tc.path != "" {
				wantFieldError(t, err, tc.path, tc.msg, 0)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			w := m.Workloads["server"]
			if want, _ := tc.fields["exec"].(bool); w.Exec != want {
				t.Errorf("exec = %v, want %v", w.Exec, want)
			}
			if want, _ := tc.fields["reload_signal"].(string); w.ReloadSignal != want {
				t.Errorf("reload_signal = %q, want %q", w.ReloadSignal, want)
			}
		})
	}
}
