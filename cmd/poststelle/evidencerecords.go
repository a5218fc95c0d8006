package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/internal/assembly"
)

// runEvidenceRecords is `poststelle evidence records`: the gateway's
// current RFC 4998 evidence records (those serve builds and renews), each
// written as NAME.ers beside its data object NAME, so that an auditor can
// validate them with DSS or check what is due with `evidence renew
// --dry-run --dir`. It reads the log, not the state database: the newest
// EvidenceRecordSaved of each object names its record.
func runEvidenceRecords(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("evidence records", stderr)
	lf := addLogFlags(fs, cfgPath)
	out := fs.String("out", "", "`directory` to write NAME.ers and NAME into (created when missing)")
	tenant := fs.String("tenant", gateway.DefaultTenant, "the records' `tenant`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: poststelle evidence records --out DIR [--config FILE] [--db FILE] [--tenant T]")
		return exitUsage
	}
	l, cfg, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	logger := newLogger(stderr, cfg.LogLevel)
	blobs, err := assembly.OpenBlobs(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	if c, ok := blobs.(io.Closer); ok {
		defer c.Close()
	}
	latest, err := preservation.LatestRecords(ctx, l, *tenant)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	if err := os.MkdirAll(*out, 0o750); err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	code := exitOK
	for _, name := range slices.Sorted(maps.Keys(latest)) {
		s := latest[name]
		if err := exportBlob(ctx, blobs, s.Record, filepath.Join(*out, name+".ers")); err != nil {
			fmt.Fprintf(stdout, "failed %s: record: %v\n", name, err)
			code = exitFailed
			continue
		}
		err := exportBlob(ctx, blobs, s.Object.Data, filepath.Join(*out, name))
		switch {
		case errors.Is(err, blob.ErrErased):
			fmt.Fprintf(stdout, "%s: data object erased; the record alone is written (%s, %s)\n", name, s.Cause, s.GenTime.Format("2006-01-02"))
		case err != nil:
			fmt.Fprintf(stdout, "failed %s: data object: %v\n", name, err)
			code = exitFailed
		default:
			fmt.Fprintf(stdout, "%s: %s %s, newest timestamp %s\n", name, s.Cause, s.Hash, s.GenTime.Format("2006-01-02T15:04:05Z"))
		}
	}
	fmt.Fprintf(stderr, "%d evidence records written to %s\n", len(latest), *out)
	return code
}

// exportBlob copies a blob to path; the store's reader fails at the end
// unless the bytes hash to ref, and then nothing is left at path.
func exportBlob(ctx context.Context, blobs blob.Backend, ref blob.Ref, path string) error {
	rc, err := blobs.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
