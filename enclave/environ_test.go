package enclave

import (
	"slices"
	"testing"
)

func TestEnviron(t *testing.T) {
	m := &Manifest{
		Env:      map[string]string{"PATH": "/usr/bin", "HOME": "/root", "TZ": "UTC"},
		AllowEnv: []string{"TZ", "LC_*", "DEBUG"},
	}
	tests := []struct {
		name      string
		host      []string
		delivered map[string]string
		want      []string
	}{
		{"fixed only", nil, nil, []string{"HOME=/root", "PATH=/usr/bin", "TZ=UTC"}},
		{"host filtered", []string{"PATH=/evil", "SECRET=x", "LC_ALL=C", "LC=no", "DEBUG=1", "DEBUGX=no", "TZ=Europe/Paris"}, nil,
			[]string{"DEBUG=1", "HOME=/root", "LC_ALL=C", "PATH=/usr/bin", "TZ=Europe/Paris"}},
		{"host last wins", []string{"DEBUG=1", "DEBUG=2"}, nil, []string{"DEBUG=2", "HOME=/root", "PATH=/usr/bin", "TZ=UTC"}},
		{"host value with equals", []string{"DEBUG=a=b", "noequals"}, nil, []string{"DEBUG=a=b", "HOME=/root", "PATH=/usr/bin", "TZ=UTC"}},
		{"delivered wins", []string{"TZ=Europe/Paris"}, map[string]string{"TZ": "Asia/Tokyo", "TOKEN": "t", "PATH": "/bin"},
			[]string{"HOME=/root", "PATH=/bin", "TOKEN=t", "TZ=Asia/Tokyo"}},
		{"invalid entries dropped", []string{"DEBUG=a\x00b", "=x"}, map[string]string{"": "x", "A=B": "y", "OK": "z\x00", "TZ": "bad\x00"},
			[]string{"HOME=/root", "PATH=/usr/bin", "TZ=UTC"}},
		{"sorted by name", nil, map[string]string{"A": "1", "A<": "2"}, []string{"A=1", "A<=2", "HOME=/root", "PATH=/usr/bin", "TZ=UTC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Environ(tc.host, tc.delivered); !slices.Equal(got, tc.want) {
				t.Errorf("Environ = %q\nwant %q", got, tc.want)
			}
		})
	}
	if got := (&Manifest{AllowEnv: []string{"*"}}).Environ([]string{"ANY=1"}, nil); !slices.Equal(got, []string{"ANY=1"}) {
		t.Errorf("allow_env * = %q, want every host variable", got)
	}
}
