package cms

import (
	"bytes"
	"os"
	"testing"
)

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
		})
	}
}
