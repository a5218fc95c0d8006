package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/verify"
)

const verifyUsage = `usage: poststelle verify [--trust FILE|DIR|TL.xml]... [--tl-signer PEM]... [--at RFC3339] [--detached FILE]
       [--revocation-freshness ignore|next-update] [--policy-name NAME] [--format json|text|html] FILE

Verifies the CAdES/CMS signatures (.p7s, .p7m, S/MIME) or the RFC 3161
timestamp (.tsr, .tst) in FILE and prints the report.
Exit status: 0 every signature TOTAL_PASSED, 1 any is not, 2 unusable input or usage.
`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runVerify implements `poststelle verify`.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("poststelle verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	var trustPaths, tlSigners stringList
	fs.Var(&trustPaths, "trust", "trust anchor `FILE`, directory of anchors and trusted lists, or trusted list (*.xml); repeatable")
	fs.Var(&tlSigners, "tl-signer", "`PEM` with the certificates allowed to sign the given (lists of) trusted lists; repeatable")
	at := fs.String("at", "", "validation time, RFC 3339 (default: now)")
	detached := fs.String("detached", "", "signed content `FILE` of a detached signature, or the data a timestamp covers")
	format := fs.String("format", "text", "output format: json, text or html")
	freshness := fs.String("revocation-freshness", "", "validation policy: revocation data must be current (next-update) or not (ignore, the default; see docs/verification.md)")
	policyName := fs.String("policy-name", "", "name of the validation policy in the report (default: the default policy's name, or \"custom\")")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	write, ok := map[string]func(io.Writer, *report.Report) error{
		"json": report.WriteJSON, "text": report.WriteText, "html": report.WriteHTML,
	}[*format]
	if !ok {
		fmt.Fprintf(stderr, "poststelle verify: unknown format %q (json, text or html)\n", *format)
		return exitUsage
	}
	policy, err := verify.Policy{Name: *policyName, RevocationFreshness: verify.Freshness(*freshness)}.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "poststelle verify: %v\n", err)
		return exitUsage
	}
	opts := verify.Options{Name: fs.Arg(0), Tool: "poststelle verify", Policy: policy}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "poststelle verify: --at: %v\n", err)
			return exitUsage
		}
		opts.Time = t
	}
	if *detached != "" {
		if opts.Detached, err = readInput(*detached); err != nil {
			fmt.Fprintf(stderr, "poststelle verify: --detached: %v\n", err)
			return exitUsage
		}
	}
	if len(trustPaths) > 0 || len(tlSigners) > 0 {
		opts.Trust, err = verify.LoadTrust(ctx, verify.TrustConfig{Paths: trustPaths, TLSigners: tlSigners})
		if err != nil {
			fmt.Fprintf(stderr, "poststelle verify: %v\n", err)
			return exitUsage
		}
	}
	data, err := readInput(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "poststelle verify: %v\n", err)
		return exitUsage
	}
	rep, err := verify.Verify(ctx, data, opts)
	if err != nil {
		fmt.Fprintf(stderr, "poststelle verify: %s: %v\n", fs.Arg(0), err)
		if errors.Is(err, context.Canceled) {
			return exitFailed
		}
		return exitUsage
	}
	if err := write(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "poststelle verify: write report: %v\n", err)
		return exitFailed
	}
	if verify.AllPassed(rep) {
		return exitOK
	}
	return exitFailed
}

// readInput reads a file of at most verify.MaxInputSize bytes.
func readInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, verify.MaxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > verify.MaxInputSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, verify.MaxInputSize)
	}
	return data, nil
}
