package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/pki"
	"github.com/spf13/cobra"
)

func (a *app) newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the Coordinator's tamper-evident audit log",
		Long: `The Coordinator records every change of its state in an append-only log: its starts and
identity, manifests set and updated (with user changes), secret writes (names and users, never
values), governance steps and recoveries, and activations (counts per workload per hour). Each
entry holds the hash of the one before; the newest entry's hash, the head, is signed by the
deployment root and bound into every quote of the Coordinator.`,
	}
	cmd.AddCommand(a.newAuditLogCmd(), a.newAuditVerifyCmd())
	return cmd
}

// auditLogFlags are the flags of `cloister audit log`.
type auditLogFlags struct {
	conn     connFlags
	out      outputFlag
	from     uint64
	follow   bool
	interval time.Duration
	export   string
}

func (a *app) newAuditLogCmd() *cobra.Command {
	var f auditLogFlags
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print the audit log, verified with the pinned deployment root",
		Long: `Print the Coordinator's audit log from entry --from on, one line per entry (number, time,
actor, kind, fields). The caller must be a user of the manifest (--cert, --key).

The log is verified before it is printed: an unbroken chain, a head signed by the pinned
deployment root, and, if an earlier head of this Coordinator was saved (by cloister verify or an
earlier audit log), a log that extends it; the new head is then saved. --export FILE also keeps
the export as the Coordinator sent it, for "cloister audit verify" and third parties.

--follow keeps polling for new entries every --interval (each poll is verified to extend the
last) until interrupted; with --output json it prints one entry per line.`,
		Example: `  cloister audit log --cert admin.pem --key admin-key.pem
  cloister audit log --export audit.jsonl
  cloister audit log --from 120 --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runAuditLog(cmd, &f) },
	}
	a.registerConnFlags(cmd, &f.conn)
	f.out.register(cmd)
	fl := cmd.Flags()
	fl.Uint64Var(&f.from, "from", 1, "first entry to read")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep printing new entries until interrupted")
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "how often --follow asks for new entries")
	fl.StringVar(&f.export, "export", "", "also write the export as received to this file (for cloister audit verify)")
	return cmd
}

func (a *app) runAuditLog(cmd *cobra.Command, f *auditLogFlags) error {
	switch {
	case f.from == 0:
		return usageError(errors.New("--from: entries are numbered from 1"))
	case f.follow && f.export != "":
		return usageError(errors.New("--follow and --export exclude each other: an export ends with its head"))
	case f.interval < 100*time.Millisecond:
		return usageError(fmt.Errorf("--interval %v: expected at least 100ms", f.interval))
	}
	c, err := a.client(&f.conn)
	if err != nil {
		return err
	}
	root, err := a.pinnedRoot(&f.conn)
	if err != nil {
		return err
	}
	seen, err := a.seenHead(&f.conn)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	head, entries, err := a.fetchAudit(ctx, c, root, f.from, seen, f.export, func(e *audit.Entry) {
		if f.out.format != "json" && !f.follow {
			printAuditEntry(w, e)
		}
	})
	if err != nil {
		return err
	}
	if err := a.saveSeenHead(&f.conn, root, head); err != nil {
		return err
	}
	if !f.follow {
		if f.out.format == "json" {
			doc := jsonoutput.AuditLog{Entries: []jsonoutput.AuditEntry{}, Head: auditHeadJSON(head)}
			for _, e := range entries {
				doc.Entries = append(doc.Entries, auditEntryJSON(e))
			}
			return writeJSON(w, doc)
		}
		return nil
	}
	print := func(e *audit.Entry) {
		if f.out.format == "json" {
			b, _ := json.Marshal(auditEntryJSON(e))
			fmt.Fprintf(w, "%s\n", b)
			return
		}
		printAuditEntry(w, e)
	}
	for _, e := range entries {
		print(e)
	}
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, more, err := a.fetchAudit(ctx, c, root, head.Seq+1, head, "", nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range more {
			print(e)
		}
		if next.Seq > head.Seq {
			if err := a.saveSeenHead(&f.conn, root, next); err != nil {
				return err
			}
		}
		head = next
	}
}

// fetchAudit reads the audit log from entry from into a temporary file (or export), verifies it
// with root and seen (when the export can be checked against it) and returns its head and
// entries; each is also given to each as it is read, after the whole export verified.
func (a *app) fetchAudit(ctx context.Context, c *client.Client, root *x509.Certificate, from uint64, seen *audit.Head, export string, each func(*audit.Entry)) (*audit.Head, []*audit.Entry, error) {
	dir := ""
	if export != "" {
		dir = filepath.Dir(export)
	}
	tmp, err := os.CreateTemp(dir, ".cloister-audit-*")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := c.AuditLog(ctx, from, tmp); err != nil {
		return nil, nil, fmt.Errorf("read the audit log: %w", err)
	}
	opts := audit.VerifyOptions{Root: root}
	if seen != nil && from <= seen.Seq+1 {
		opts.Seen = seen
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	if _, err := audit.Verify(tmp, opts); err != nil {
		return nil, nil, withCode(jsonoutput.CodeNotVerified, fmt.Errorf("the Coordinator's audit log does NOT verify: %w", err))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	var entries []*audit.Entry
	opts.OnEntry = func(e *audit.Entry) error {
		entries = append(entries, e)
		if each != nil {
			each(e)
		}
		return nil
	}
	rep, err := audit.Verify(tmp, opts)
	if err != nil {
		return nil, nil, withCode(jsonoutput.CodeNotVerified, fmt.Errorf("the Coordinator's audit log does NOT verify: %w", err))
	}
	if export != "" {
		if err := tmp.Sync(); err != nil {
			return nil, nil, err
		}
		if err := os.Rename(tmp.Name(), export); err != nil {
			return nil, nil, fmt.Errorf("--export: %w", err)
		}
	}
	return &rep.Head, entries, nil
}

// seenHeadPath is where the last verified audit head of the Coordinator at f.addr is kept,
// beside its pinned root.
func (a *app) seenHeadPath(f *connFlags) (string, error) {
	p, err := a.pinPath(f)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "audit-head.json"), nil
}

// seenHead returns the saved audit head of the Coordinator at f.addr, or nil.
func (a *app) seenHead(f *connFlags) (*audit.Head, error) {
	p, err := a.seenHeadPath(f)
	if err != nil {
		return nil, err
	}
	b, err := readBounded(p, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h, err := parseHead(b)
	if err != nil {
		return nil, fmt.Errorf("saved audit head %s: %w", p, err)
	}
	return h, nil
}

// saveSeenHead keeps h, verified with root, as the last verified head of the Coordinator at
// f.addr. It refuses h, with ErrStateWentBackwards, if the saved head of the same root is
// later or names the same entry with another hash (see seen.go).
func (a *app) saveSeenHead(f *connFlags, root *x509.Certificate, h *audit.Head) error {
	p, err := a.seenHeadPath(f)
	if err != nil {
		return err
	}
	old, err := a.seenHead(f)
	if err != nil {
		return err
	}
	if old != nil {
		var saved time.Time
		if fi, err := os.Stat(p); err == nil {
			saved = fi.ModTime()
		}
		if err := checkSeenHead(old, saved, root, h); err != nil {
			return err
		}
		if old.Seq == h.Seq {
			return nil
		}
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(p, append(b, '\n'), 0o600)
}

// parseHead reads a signed audit head: the head itself, or a document holding it as
// "audit_head" (the JSON output of cloister status and cloister verify).
func parseHead(b []byte) (*audit.Head, error) {
	var h audit.Head
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err == nil && len(h.Signature) > 0 {
		return &h, nil
	}
	var doc struct {
		AuditHead *audit.Head `json:"audit_head"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.AuditHead == nil || len(doc.AuditHead.Signature) == 0 {
		return nil, errors.New(`expected a signed audit head {"seq":…,"hash":…,"time":…,"signature":…}, or a document with one as "audit_head"`)
	}
	return doc.AuditHead, nil
}

func auditHeadJSON(h *audit.Head) jsonoutput.AuditHead {
	return jsonoutput.AuditHead{Seq: h.Seq, Hash: h.Hash.String(), Time: h.Time.UTC().Format(time.RFC3339Nano), Signature: h.Signature}
}

func auditEntryJSON(e *audit.Entry) jsonoutput.AuditEntry {
	out := jsonoutput.AuditEntry{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Kind: e.Kind, Actor: e.Actor,
		Fields: map[string]string{}, Prev: e.Prev.String()}
	maps.Copy(out.Fields, e.Fields)
	return out
}

// printAuditEntry prints one entry as a line: number, time, actor, kind, then the fields
// sorted by name (values with spaces or quotes quoted).
func printAuditEntry(w io.Writer, e *audit.Entry) {
	var b strings.Builder
	fmt.Fprintf(&b, "%6d  %s  %-12s %-20s", e.Seq, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Actor, e.Kind)
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		v := e.Fields[k]
		if v == "" || strings.ContainsAny(v, " \"\\") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	fmt.Fprintln(w, b.String())
}

// auditVerifyFlags are the flags of `cloister audit verify`.
type auditVerifyFlags struct {
	out  outputFlag
	root string
	seen string
}

func (a *app) newAuditVerifyCmd() *cobra.Command {
	var f auditVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify FILE --root ROOT.pem",
		Short: "Verify an exported audit log offline",
		Long: `Verify an audit log export (as "cloister audit log --export" writes it) offline, with nothing but
the deployment's root certificate: every entry in its one encoding, numbered without gaps, each
holding the hash of the one before, times never decreasing, and a head signed by the root that
names the last entry. --seen HEAD.json also requires the log to pass through a head seen before
(saved by cloister verify or cloister audit log, or the JSON output of cloister status): a log
that forks from it, or ends before it, is refused.

The exit status is 0 when the export verifies; otherwise the report names the first bad entry and
its line.`,
		Example: `  cloister certificate root > root.pem
  cloister audit log --export audit.jsonl
  cloister audit verify audit.jsonl --root root.pem --seen ~/.config/cloister/coordinators/localhost_4433/audit-head.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runAuditVerify(cmd, args[0], &f) },
	}
	f.out.register(cmd)
	cmd.Flags().StringVar(&f.root, "root", "", "the deployment's root certificate, PEM (required)")
	cmd.Flags().StringVar(&f.seen, "seen", "", "a signed audit head seen before, JSON: the log must extend it")
	_ = cmd.MarkFlagRequired("root")
	return cmd
}

func (a *app) runAuditVerify(cmd *cobra.Command, file string, f *auditVerifyFlags) error {
	b, err := readBounded(f.root, 64<<10)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	certs, err := pki.ParseCertsPEM(b)
	if err != nil || len(certs) != 1 {
		return usageError(fmt.Errorf("--root %s: expected one PEM certificate (%v)", f.root, err))
	}
	root := certs[0]
	opts := audit.VerifyOptions{Root: root}
	if f.seen != "" {
		b, err := readBounded(f.seen, 64<<10)
		if err != nil {
			return fmt.Errorf("--seen: %w", err)
		}
		if opts.Seen, err = parseHead(b); err != nil {
			return usageError(fmt.Errorf("--seen %s: %w", f.seen, err))
		}
	}
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	out := jsonoutput.AuditVerify{Kinds: map[string]uint64{}, RootFingerprint: fingerprint(root)}
	rep, verr := audit.Verify(in, opts)
	if verr == nil {
		out.Valid, out.First, out.Last, out.SeenChecked = true, rep.First, rep.Last, rep.SeenChecked
		maps.Copy(out.Kinds, rep.Kinds)
		for _, n := range rep.Kinds {
			out.Entries += n
		}
		out.Head = new(auditHeadJSON(&rep.Head))
	} else {
		out.Problem = strings.TrimPrefix(verr.Error(), audit.ErrInvalid.Error()+": ")
	}
	err = f.out.print(cmd.OutOrStdout(), out, func(w io.Writer) {
		if !out.Valid {
			fmt.Fprintf(w, "Audit log %s does NOT verify: %s\n", file, out.Problem)
			return
		}
		fmt.Fprintf(w, "Audit log %s verified: entries %d to %d (%d entries)\n", file, out.First, out.Last, out.Entries)
		fmt.Fprintf(w, "  head          entry %d, hash %s, signed %s\n", out.Head.Seq, out.Head.Hash, out.Head.Time)
		fmt.Fprintf(w, "  root SHA-256  %s\n", out.RootFingerprint)
		switch {
		case opts.Seen == nil:
			fmt.Fprintf(w, "  seen head     none given (--seen): the log is checked on its own\n")
		default:
			fmt.Fprintf(w, "  seen head     entry %d: the log extends it\n", opts.Seen.Seq)
		}
		for i, k := range slices.Sorted(maps.Keys(out.Kinds)) {
			label := ""
			if i == 0 {
				label = "kinds"
			}
			fmt.Fprintf(w, "  %-13s %-22s %d\n", label, k, out.Kinds[k])
		}
	})
	if err != nil {
		return err
	}
	if verr != nil {
		return &exitError{code: 1, msg: "audit log NOT verified: " + out.Problem}
	}
	return nil
}
