package pades_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/pades"
	"github.com/poststelle/poststelle/crypto/pades/padestest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// rssFileEnv makes the test binary verify one file and print its peak
// resident set (VmHWM) instead of running tests: the benchmark measures
// memory in a fresh process, free of the benchmark's own set-up.
const rssFileEnv = "PADES_RSS_FILE"

func TestMain(m *testing.M) {
	if path := os.Getenv(rssFileEnv); path != "" {
		os.Exit(rssChild(path))
	}
	os.Exit(m.Run())
}

func rssChild(path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	res, err := pades.Verify(context.Background(), f, st.Size(), pades.Options{})
	if err != nil || len(res.Signatures) != 1 || !res.Signatures[0].CMS.Signers[0].Valid {
		fmt.Fprintln(os.Stderr, "verification failed:", err)
		return 1
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fmt.Println(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
		}
	}
	return 0
}

// benchDir keeps the benchmark's document for crypto/pades/bench/run.sh
// (which hands the same file to DSS) when PADES_BENCH_OUT names a folder.
func benchDir(b *testing.B) string {
	if d := os.Getenv("PADES_BENCH_OUT"); d != "" {
		return d
	}
	return b.TempDir()
}

// BenchmarkVerify10MB verifies a 10 MB PDF signed with openssl (CAdES,
// RSA-2048, SHA-256) from its file: parse, ByteRange, streamed hashing of
// the covered bytes, CMS checks. It reports documents per second and, from
// a child process verifying the file once, the peak resident set in MB.
func BenchmarkVerify10MB(b *testing.B) {
	p := verifytest.New(b, "rsa")
	pdf, err := padestest.Sign(padestest.Unsigned("Antrag", 10<<20), "Sig", "ETSI.CAdES.detached",
		func(covered []byte) ([]byte, error) { return p.Sign(b, covered, false), nil })
	if err != nil {
		b.Fatal(err)
	}
	dir := benchDir(b)
	path := filepath.Join(dir, "bench-10mb.pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		b.Fatal(err)
	}
	ca, err := os.ReadFile(p.CACert)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-ca.pem"), ca, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(pdf)))
	b.ResetTimer()
	for b.Loop() {
		res, err := pades.Verify(context.Background(), f, int64(len(pdf)), pades.Options{})
		if err != nil || !res.Signatures[0].CMS.Signers[0].Valid {
			b.Fatalf("verification failed: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	b.StopTimer()
	b.ReportMetric(childRSS(b, path), "peak-RSS-MB")
}

func childRSS(b *testing.B, path string) float64 {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	out, err := runChild(exe, path)
	if err != nil {
		b.Fatalf("RSS child: %v: %s", err, out)
	}
	var kb float64
	if _, err := fmt.Sscanf(string(out), "%f kB", &kb); err != nil {
		b.Fatalf("RSS child printed %q", out)
	}
	return kb / 1024
}
