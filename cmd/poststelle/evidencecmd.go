package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/evidencebundle"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/internal/assembly"
)

const evidenceUsage = `usage: poststelle evidence MESSAGE-ID --out FILE [--config FILE] [--db FILE] [--tenant T]
       poststelle evidence verify FILE [--key gateway.pub] [--trust anchors.pem]...
       poststelle evidence renew --dir DIR [--data DIR] [--tsa URL] [--hash SHA-512] [--dry-run]
       poststelle evidence records --out DIR [--config FILE] [--db FILE] [--tenant T]`

// runEvidence is `poststelle evidence`: the evidence bundle of one message
// (its stream id, as log replay and the office API name it), or with
// verify the offline check of one, with renew the renewal of RFC 4998
// evidence records in a directory, or with records the export of serve's
// own records.
func runEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return runEvidenceVerify(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "renew" {
		return runEvidenceRenew(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "records" {
		return runEvidenceRecords(ctx, args[1:], stdout, stderr)
	}
	fs, cfgPath := newFlags("evidence", stderr)
	lf := addLogFlags(fs, cfgPath)
	out := fs.String("out", "", "write the bundle (ASiC-E) to this `file`")
	tenant := fs.String("tenant", gateway.DefaultTenant, "the message's `tenant`")
	id, rest := positional(args)
	if code, ok := parse(fs, rest); !ok {
		return code
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" || *out == "" {
		fmt.Fprintln(stderr, evidenceUsage)
		return exitUsage
	}
	l, cfg, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	logger := newLogger(stderr, cfg.LogLevel)
	signer, err := keys.LoadSigner(cfg.Keys.SigningKey)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: the bundle's head is signed with the gateway key:", err)
		return exitUsage
	}
	blobs, err := assembly.OpenBlobs(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open blobs:", err)
		return exitUsage
	}
	b, release, err := assembly.EvidenceBuilder(ctx, cfg, l, blobs, signer, version, logger)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	defer release()
	// The record of the original, as serve's bundles carry it, read from
	// the log: serve's state database is not the command's to read.
	b.OriginalRecord = preservation.OriginalRecordFromLog(l)
	// Written beside the target and renamed, so that a failed bundle never
	// leaves a file that looks like one.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".evidence-*")
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	defer os.Remove(tmp.Name())
	err = b.Build(ctx, *tenant, id, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		if errors.Is(err, evidencebundle.ErrNoStream) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(stderr, "evidence bundle of %s written to %s\n", id, *out)
	return exitOK
}

// positional takes a leading argument that is not a flag, so that the
// message id may come before the flags as the usage shows it.
func positional(args []string) (string, []string) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
}

func runEvidenceVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("evidence verify", stderr)
	keyPath := fs.String("key", "", "the gateway's public key `file` as the authority published it (default: the key in the bundle, which proves only as much as the seal)")
	var trustPaths stringList
	fs.Var(&trustPaths, "trust", "trust anchor `FILE` or directory for the seal's and the TSAs' certificates; repeatable (default: none, integrity only)")
	file, rest := positional(args)
	if code, ok := parse(fs, rest); !ok {
		return code
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	if file == "" {
		fmt.Fprintln(stderr, evidenceUsage)
		return exitUsage
	}
	var opts evidencebundle.VerifyOptions
	if *keyPath != "" {
		pub, err := keys.LoadPublic(*keyPath)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle:", err)
			return exitUsage
		}
		opts.Key = pub
	}
	if len(trustPaths) > 0 {
		t, err := verify.LoadTrust(ctx, verify.TrustConfig{Paths: trustPaths})
		if err != nil {
			fmt.Fprintln(stderr, "poststelle: --trust:", err)
			return exitUsage
		}
		opts.Trust = t
	}
	data, err := readCapped(file, evidencebundle.MaxBundle)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	res, err := evidencebundle.Verify(ctx, data, opts)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	for _, f := range res.Findings {
		verdict := "ok    "
		if !f.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(stdout, "%s %-17s %s\n", verdict, f.Check, f.Detail)
	}
	if failed := res.Failed(); len(failed) > 0 {
		fmt.Fprintf(stdout, "INVALID: %s: %s\n", failed[0].Check, failed[0].Detail)
		return exitFailed
	}
	fmt.Fprintf(stdout, "VALID: the evidence bundle of %s is intact and every event in it is in the signed log head\n", res.Index.Stream)
	return exitOK
}
