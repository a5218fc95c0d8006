// Command mkers makes the evidence-record cases that DSS and crypto/ers are
// compared on: erstest's simulated life (built at T0 by TSA 1 with SHA-256,
// timestamp renewed at T0+10y by TSA 2 under a new root, hash tree renewed
// to SHA-512 an hour later) over three data objects and over a single one,
// plus the negatives (a changed data byte, another data object, a changed
// byte in a record, a TSA revoked before its timestamp was renewed). It writes them with the anchors and jobs.tsv to
// crypto/ers/testdata/dss. The outputs are committed: DSS's golden verdicts
// refer to these exact bytes, so rerun it only together with the oracle
// (test/integration/ers/run.sh --regen).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/ers/erstest"
)

// t0 is fixed so that the jobs' validation times stay what the golden files say.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("out", "crypto/ers/testdata/dss", "output directory")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, b []byte) error { return os.WriteFile(filepath.Join(dir, name), b, 0o644) }
	writeER := func(name string, er *ers.EvidenceRecord) ([]byte, error) {
		der, err := er.Marshal()
		if err != nil {
			return nil, err
		}
		return der, write(name, der)
	}
	data := [][]byte{[]byte("Antrag auf Akteneinsicht\n"), []byte("Bescheid vom 3. Dezember\n"), []byte("Widerspruch\n")}
	ctx := context.Background()
	life, err := erstest.NewLife(ctx, t0, data)
	if err != nil {
		return err
	}
	single, err := erstest.NewLife(ctx, t0, [][]byte{[]byte("Eingangsbestaetigung\n")})
	if err != nil {
		return err
	}
	for i, d := range data {
		if err := write(fmt.Sprintf("data-%d.txt", i), d); err != nil {
			return err
		}
	}
	changed := bytes.Clone(data[0])
	changed[3] ^= 0x01
	if err := write("data-0-changed.txt", changed); err != nil {
		return err
	}
	if err := write("single.txt", single.Data[0]); err != nil {
		return err
	}
	for name, ca := range map[string]*erstest.CA{"root1.pem": life.CA1, "root2.pem": life.CA2, "single-root1.pem": single.CA1, "single-root2.pem": single.CA2} {
		if err := write(name, ca.PEM()); err != nil {
			return err
		}
	}
	for i := range data {
		for stage, recs := range map[string][]*ers.EvidenceRecord{"built": life.Built, "renewed": life.Renewed, "rehashed": life.Rehashed} {
			if _, err := writeER(fmt.Sprintf("%s-%d.ers", stage, i), recs[i]); err != nil {
				return err
			}
		}
	}
	for stage, recs := range map[string][]*ers.EvidenceRecord{"built": single.Built, "renewed": single.Renewed, "rehashed": single.Rehashed} {
		if _, err := writeER("single-"+stage+".ers", recs[0]); err != nil {
			return err
		}
	}
	// A changed byte in record 1's first PartialHashtree: the hash of its
	// sibling, data object 0.
	der, err := life.Rehashed[1].Marshal()
	if err != nil {
		return err
	}
	sib := sha256.Sum256(data[0])
	off := bytes.Index(der, sib[:])
	if off < 0 {
		return fmt.Errorf("sibling hash not in record 1")
	}
	der[off+5] ^= 0x01
	if err := write("rehashed-1-changed.ers", der); err != nil {
		return err
	}

	// TSA 1's key compromised a day after T0; its own renewal a day later
	// carries the CRL that says so.
	day := 24 * time.Hour
	life.CA1.Revoke(life.TSA1, t0.Add(day))
	life.TSA1.Now = func() time.Time { return t0.Add(2 * day) }
	revoked, err := ers.TimestampRenewal(ctx, life.TSA1, life.Built[0])
	if err != nil {
		return err
	}
	if _, err := writeER("revoked-renewed.ers", revoked[0]); err != nil {
		return err
	}

	trust, strust := "root1.pem,root2.pem", "single-root1.pem,single-root2.pem"
	today := t0.Add(time.Hour)
	later := t0.Add(erstest.RehashedAt + time.Hour)
	jobs := []struct {
		name, record, data, trust string
		at                        time.Time
	}{
		{"built-today", "built-0.ers", "data-0.txt", trust, today},
		{"built-other-object", "built-1.ers", "data-1.txt", trust, today},
		{"built-changed-data", "built-0.ers", "data-0-changed.txt", trust, today},
		{"built-wrong-object", "built-0.ers", "data-2.txt", trust, today},
		{"built-untrusted", "built-0.ers", "data-0.txt", "root2.pem", today},
		{"built-eleven-years", "built-0.ers", "data-0.txt", trust, t0.Add(11 * erstest.Year)},
		{"renewed-ten-years", "renewed-0.ers", "data-0.txt", trust, later},
		{"rehashed-ten-years", "rehashed-0.ers", "data-0.txt", trust, later},
		{"rehashed-other-object", "rehashed-1.ers", "data-1.txt", trust, later},
		{"rehashed-last-object", "rehashed-2.ers", "data-2.txt", trust, later},
		{"rehashed-changed-data", "rehashed-0.ers", "data-0-changed.txt", trust, later},
		{"rehashed-wrong-object", "rehashed-0.ers", "data-2.txt", trust, later},
		{"rehashed-changed-record", "rehashed-1-changed.ers", "data-1.txt", trust, later},
		{"revoked-tsa", "revoked-renewed.ers", "data-0.txt", trust, t0.Add(3 * day)},
		{"single-built-today", "single-built.ers", "single.txt", strust, today},
		{"single-renewed-ten-years", "single-renewed.ers", "single.txt", strust, later},
		{"single-rehashed-ten-years", "single-rehashed.ers", "single.txt", strust, later},
	}
	var b strings.Builder
	b.WriteString("# name\trecord\tdata\ttrust\tat   (generated by test/integration/ers/mkers)\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\n", j.name, j.record, j.data, j.trust, j.at.Format(time.RFC3339))
	}
	return write("jobs.tsv", []byte(b.String()))
}
