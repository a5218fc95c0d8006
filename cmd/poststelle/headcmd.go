package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/witness"
)

// runLogHead is `poststelle log head`: the log's current signed tree head,
// for an auditor to keep and check the log against later.
func runLogHead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("log head", stderr)
	lf := addLogFlags(fs, cfgPath)
	out := fs.String("out", "", "write the head to this `file` (atomically) instead of stdout")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	l, cfg, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	signer, err := keys.LoadSigner(cfg.Keys.SigningKey)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: the head is signed with the gateway key:", err)
		return exitUsage
	}
	heads, err := integrity.CurrentHeads(ctx, l, signer.Public())
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	text, err := integrity.SignHeads(signer, heads)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	if *out == "" {
		stdout.Write(text)
		return exitOK
	}
	if err := witness.WriteFile(*out, text); err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	var size int64
	for _, h := range heads {
		size += h.Size
	}
	fmt.Fprintf(stderr, "head of %d events in %d partition(s) written to %s\n", size, len(heads), *out)
	return exitOK
}

// headFiles is the repeatable --head flag.
type headFiles []string

func (h *headFiles) String() string     { return strings.Join(*h, ",") }
func (h *headFiles) Set(v string) error { *h = append(*h, v); return nil }

// savedHead is one --head file with its heads and timestamp.
type savedHead struct {
	file  string
	heads []integrity.Head
}

// headVerification checks the log against --head files while log verify
// reads it. A nil *headVerification checks nothing.
type headVerification struct {
	saved []savedHead
	check *integrity.HeadCheck
}

// loadHeads reads and checks the --head files: their signatures with pub,
// their log, and the timestamp token beside each when there is one. It
// prints what is wrong and returns the exit code when verification must stop.
func loadHeads(files []string, pub crypto.PublicKey, logID string, stdout, stderr io.Writer) (*headVerification, int) {
	if len(files) == 0 {
		return nil, exitOK
	}
	hv := &headVerification{}
	var all []integrity.Head
	for _, f := range files {
		text, err := readCapped(f, integrity.MaxHeadFile)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle: --head:", err)
			return nil, exitUsage
		}
		heads, err := integrity.ParseHeads(text, pub)
		if err != nil {
			fmt.Fprintf(stdout, "BROKEN: head %s: %v\n", f, err)
			return nil, exitFailed
		}
		if msg, ok := checkStamp(f, text); !ok {
			fmt.Fprintf(stdout, "BROKEN: head %s: %s\n", f, msg)
			return nil, exitFailed
		} else if msg != "" {
			fmt.Fprintf(stdout, "head %s: %s\n", f, msg)
		}
		hv.saved = append(hv.saved, savedHead{file: f, heads: heads})
		all = append(all, heads...)
	}
	check, err := integrity.NewHeadCheck(logID, all)
	if err != nil {
		fmt.Fprintf(stdout, "BROKEN: %v\n", err)
		return nil, exitFailed
	}
	hv.check = check
	return hv, exitOK
}

// stampPath is where the timestamp of a head file lies: x.note → x.tsr,
// anything else → FILE.tsr.
func stampPath(file string) string {
	if s, ok := strings.CutSuffix(file, ".note"); ok {
		return s + ".tsr"
	}
	return file + ".tsr"
}

// checkStamp verifies the timestamp token beside a head file, if there is
// one: it must be intact and cover exactly the file's bytes. The TSA's
// certificate chain is left to `poststelle verify`, which knows the trust
// anchors.
func checkStamp(file string, note []byte) (string, bool) {
	path := stampPath(file)
	raw, err := readCapped(path, tsp.MaxTokenSize)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true
	}
	if err != nil {
		return err.Error(), false
	}
	tok, err := witness.ParseStamp(raw)
	if err != nil {
		return fmt.Sprintf("timestamp %s: %v", path, err), false
	}
	res := tok.Verify(tsp.VerifyOptions{Data: note})
	if !res.Valid {
		var failed []string
		for _, c := range res.Checks {
			if c.Outcome != cms.Passed {
				failed = append(failed, fmt.Sprintf("%s: %s", c.ID, c.Detail))
			}
		}
		return fmt.Sprintf("timestamp %s does not verify for this head: %s", path, strings.Join(failed, "; ")), false
	}
	tsa := "an unnamed TSA"
	if res.TSACertificate != nil {
		tsa = res.TSACertificate.Subject.String()
	}
	return fmt.Sprintf("timestamped at %s by %s (%s)", tok.Info.GenTime.UTC().Format("2006-01-02T15:04:05Z"), tsa, path), true
}

func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// wrap adds the head check to the per-event callback of VerifyLog.
func (hv *headVerification) wrap(each func(*eventstore.Event) error) func(*eventstore.Event) error {
	if hv == nil {
		return each
	}
	return func(e *eventstore.Event) error {
		if each != nil {
			if err := each(e); err != nil {
				return err
			}
		}
		return hv.check.Add(e)
	}
}

// report prints the verdict on every head; false when one is inconsistent.
func (hv *headVerification) report(stdout io.Writer, partitions int32) bool {
	if hv == nil {
		return true
	}
	problems := hv.check.Finish(partitions)
	for _, s := range hv.saved {
		for _, h := range s.heads {
			if i := slices.IndexFunc(problems, func(p *integrity.HeadProblem) bool { return p.Head == h }); i >= 0 {
				fmt.Fprintf(stdout, "BROKEN: head %s (partition %d, %d events): %s\n", s.file, h.Partition, h.Size, problems[i].Reason)
				continue
			}
			fmt.Fprintf(stdout, "head %s: partition %d extends it consistently (%d → %d events)\n", s.file, h.Partition, h.Size, hv.check.Size(h.Partition))
		}
	}
	return len(problems) == 0
}
