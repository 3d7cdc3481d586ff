package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/pki"
)

func TestCheckSeenState(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	f := &connFlags{addr: "127.0.0.1:4433", configDir: t.TempDir()}
	root1, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	root2, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	st := func(v uint64, hash string) *api.Status { return &api.Status{StateVersion: v, StateHash: hash} }
	steps := []struct {
		root *pki.CA
		st   *api.Status
		want string
	}{
		{root1, st(0, ""), ""}, // nothing seen: nothing to compare or remember
		{root1, st(5, h('a')), ""},
		{root1, st(5, h('a')), ""},
		{root1, st(7, h('b')), ""},
		{root1, st(6, h('c')), "coordinator state went backwards: state version 7 seen on "},
		{root1, st(7, h('c')), "coordinator state went backwards: state version 7 seen on "},
		{root1, st(0, ""), ", now 0"},
		{root2, st(1, h('d')), ""}, // another deployment root: its own memory
		{root1, st(7, h('b')), ""},
		{root1, st(8, "not hex"), "expected 64 lowercase hex digits"},
	}
	for i, s := range steps {
		err := a.checkSeenState(f, s.root.Cert, s.st)
		if s.want == "" {
			if err != nil {
				t.Errorf("step %d (version %d): %v", i, s.st.StateVersion, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), s.want) {
			t.Errorf("step %d (version %d): %v; want an error containing %q", i, s.st.StateVersion, err, s.want)
		}
	}
}

func TestCheckSeenHead(t *testing.T) {
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	head := func(seq uint64, b byte, r *pki.CA) *audit.Head {
		h := &audit.Head{Seq: seq, Time: at}
		h.Hash[0] = b
		if err := h.Sign(r.Key); err != nil {
			t.Fatal(err)
		}
		return h
	}
	old := head(10, 1, root)
	for _, tc := range []struct {
		old  *audit.Head
		h    *audit.Head
		want string
	}{
		{nil, head(1, 1, root), ""},
		{old, head(11, 2, root), ""},
		{old, head(10, 1, root), ""},
		{old, head(9, 1, root), "coordinator state went backwards: audit head entry 10 seen on 2026-12-04T07:00:00Z, now entry 9"},
		{old, head(10, 2, root), "the log forked"},
		{head(10, 1, other), head(3, 1, root), ""}, // a head of another deployment is not compared
	} {
		err := checkSeenHead(tc.old, at.Add(time.Hour), root.Cert, tc.h)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("seq %d: %v", tc.h.Seq, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrStateWentBackwards)):
			t.Errorf("seq %d: %v; want ErrStateWentBackwards containing %q", tc.h.Seq, err, tc.want)
		}
	}
}
