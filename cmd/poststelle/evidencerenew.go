package main

import (
	"context"
	"crypto"
	"encoding/asn1"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
)

// runEvidenceRenew is `poststelle evidence renew`: the renewal run over a
// directory of RFC 4998 evidence records (NAME.ers beside, or under --data,
// the data object NAME). The "evidence" dispatcher calls it with the
// arguments after "renew".
//
// Serve does the same for its own records (gateway/preservation, the
// evidence.records configuration): it builds them over the originals and
// log heads and runs ers.Renew daily over those due, on the owner of the
// stream evidence-records only, and logs an error per record it could not
// renew. This command is for records kept outside the gateway, and for an
// auditor's dry run over `evidence records --out DIR`.
func runEvidenceRenew(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("evidence renew", stderr)
	dir := fs.String("dir", "", "directory of evidence records (`NAME.ers`)")
	data := fs.String("data", "", "directory of the data objects (default: --dir); needed for hash-tree renewal")
	tsaURL := fs.String("tsa", "", "TSA `url` (default: the first of verification.tsas in the configuration)")
	hashName := fs.String("hash", "SHA-512", "hash `algorithm` for hash-tree renewals: SHA-256, SHA-384, SHA-512, SHA3-256, SHA3-512")
	certMargin := fs.Duration("cert-margin", 0, "renew timestamps this long before the TSA certificate expires (default: the policy's 180 days)")
	dryRun := fs.Bool("dry-run", false, "only report what is due")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: poststelle evidence renew --dir DIR [--data DIR] [--tsa URL] [--hash SHA-512] [--dry-run]\n"+
			"(serve builds and renews its own records itself, see evidence.records; poststelle evidence records --out DIR exports them)")
		return exitUsage
	}
	h, ok := renewHash(*hashName)
	if !ok {
		fmt.Fprintf(stderr, "poststelle: unknown hash algorithm %q\n", *hashName)
		return exitUsage
	}
	var stamper ers.Stamper
	if !*dryRun {
		st, err := renewStamper(*cfgPath, *tsaURL)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle:", err)
			return exitUsage
		}
		stamper = st
	}
	policy := ers.DefaultPolicy()
	if *certMargin > 0 {
		policy.CertificateMargin = *certMargin
	}
	rep, err := ers.Renew(ctx, ers.DirStore{Records: *dir, Objects: *data}, ers.RenewOptions{
		Policy: policy, Stamper: stamper, NewHash: h, DryRun: *dryRun, Logger: newLogger(stderr, "info"),
	})
	if rep != nil {
		verb := "renewed"
		if *dryRun {
			verb = "due"
		}
		fmt.Fprintf(stdout, "checked %d evidence records\n", rep.Checked)
		fmt.Fprintf(stdout, "timestamp renewal %s: %s\n", verb, renewList(rep.TimestampsRenewed))
		fmt.Fprintf(stdout, "hash-tree renewal %s: %s\n", verb, renewList(rep.HashTreesRenewed))
		failed := make([]string, 0, len(rep.Failed))
		for name := range rep.Failed {
			failed = append(failed, name)
		}
		slices.Sort(failed)
		for _, name := range failed {
			fmt.Fprintf(stdout, "failed %s: %v\n", name, rep.Failed[name])
		}
		if !rep.NextDue.IsZero() {
			fmt.Fprintf(stdout, "next renewal due %s\n", rep.NextDue.UTC().Format(time.RFC3339))
		}
		if len(rep.Failed) > 0 && err == nil {
			return exitFailed
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: evidence renew:", err)
		return exitFailed
	}
	return exitOK
}

// renewHash is the algorithm of --hash.
func renewHash(name string) (crypto.Hash, bool) {
	switch strings.ToUpper(name) {
	case "SHA-256":
		return crypto.SHA256, true
	case "SHA-384":
		return crypto.SHA384, true
	case "SHA-512":
		return crypto.SHA512, true
	case "SHA3-256":
		return crypto.SHA3_256, true
	case "SHA3-512":
		return crypto.SHA3_512, true
	}
	return 0, false
}

func renewList(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, " ")
}

// renewStamper is the TSA of --tsa, else the configuration's first.
func renewStamper(cfgPath, url string) (*ers.HTTPStamper, error) {
	if url != "" {
		return &ers.HTTPStamper{URL: url}, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	if len(cfg.Verification.TSAs) == 0 {
		return nil, fmt.Errorf("no TSA: give --tsa or configure verification.tsas")
	}
	t := cfg.Verification.TSAs[0]
	st := &ers.HTTPStamper{URL: t.URL}
	if t.Policy != "" {
		oid, err := renewPolicyOID(t.Policy)
		if err != nil {
			return nil, fmt.Errorf("TSA %s policy: %w", t.URL, err)
		}
		st.Policy = oid
	}
	return st, nil
}

func renewPolicyOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad OID %q", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("bad OID %q", s)
	}
	return oid, nil
}
