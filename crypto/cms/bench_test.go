package cms

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. openssl speed divides by
// CPU time too, so docs/cpu-s stays comparable on a loaded machine where
// ns/op (wall time) does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCases are detached CAdES-B signatures (openssl cms -sign -cades:
// content-type, message-digest, signing-time, signing-certificate-v2).
var benchCases = []opensslCase{
	{name: "rsa2048", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-cades"}},
	{name: "p256", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, sign: []string{"-cades"}},
	{name: "brainpoolP256r1", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP256r1"}, sign: []string{"-cades"}},
}

// BenchmarkVerifyDetached measures parsing and verifying one detached
// CAdES-B document of 4 KiB (message digest, signed attributes, signature
// value, ESSCertIDv2), per operation. crypto/cms/bench/compare.sh sets
// these against openssl. The signatures are written to BENCH_OUT_DIR when
// set, so the script can feed the same files to openssl.
func BenchmarkVerifyDetached(b *testing.B) {
	content := bytes.Repeat([]byte("Widerspruch gegen den Bescheid vom 1. April\n"), 94)[:4096]
	for _, c := range benchCases {
		der := makeSignature(b, c, content)
		if dir := os.Getenv("BENCH_OUT_DIR"); dir != "" {
			os.WriteFile(dir+"/"+c.name+".p7s", der, 0o644)
			os.WriteFile(dir+"/content.bin", content, 0o644)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				sd, err := Parse(der)
				if err != nil {
					b.Fatal(err)
				}
				r := sd.Verify(VerifyOptions{DetachedContent: content}).Signers[0]
				if !r.Valid {
					b.Fatalf("invalid: %+v", r.Checks)
				}
			}
			if cpu := cpuTime() - start; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "docs/cpu-s")
			}
		})
	}
}
