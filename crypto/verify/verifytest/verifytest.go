// Package verifytest makes signatures for tests of crypto/verify and its
// users with the openssl command line tool: a CA with a CRL and a signer
// whose certificate carries the eIDAS QC statements (QcCompliance, QcSSCD,
// QcType esign), signing CAdES-B (openssl cms -cades) attached, detached
// and as S/MIME. The CRL is placed into the SignedData, so the chain
// validates with revocation data and nothing else.
package verifytest

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// PKI is a generated CA and signer; the file names are in Dir.
type PKI struct {
	Dir        string
	CACert     string // PEM: the trust anchor
	SignerCert string
	SignerKey  string
	CRL        []byte // DER, issued by the CA, empty
	newkey     []string
}

// QC selects the QC statements (ETSI EN 319 412-5) of a signer certificate.
type QC struct {
	Compliance bool
	SSCD       bool
	// Type is "esign", "eseal" or "" for no QcType statement.
	Type string
	// Policy is the certificate policy OID; default QCP-n-qscd
	// (0.4.0.194112.1.2), which itself claims a QSCD.
	Policy string
}

// Signer is a further signer certificate of the PKI (PEM file names).
type Signer struct {
	Cert, Key string
}

// NewSigner issues a signer certificate for subject (an openssl -subj
// string) with the given QC statements, valid as long as the default one.
func (p *PKI) NewSigner(t testing.TB, name, subject string, qc QC) Signer {
	t.Helper()
	policy := qc.Policy
	if policy == "" {
		policy = "0.4.0.194112.1.2"
	}
	ext := fmt.Sprintf("[signer]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\n"+
		"subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\ncertificatePolicies = %s\n%s",
		policy, qcExtension(qc))
	write(t, filepath.Join(p.Dir, name+".cnf"), ext)
	Run(t, p.Dir, append(append([]string{"req", "-new"}, p.newkey...), "-nodes", "-keyout", name+".key", "-out", name+".csr", "-subj", subject)...)
	Run(t, p.Dir, "x509", "-req", "-in", name+".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "20", "-sha256", "-extfile", name+".cnf", "-extensions", "signer", "-out", name+".pem")
	return Signer{Cert: filepath.Join(p.Dir, name+".pem"), Key: filepath.Join(p.Dir, name+".key")}
}

func qcExtension(qc QC) string {
	der := qcStatementsFor(qc)
	if der == nil {
		return ""
	}
	return "1.3.6.1.5.5.7.1.3 = DER:" + hex.EncodeToString(der) + "\n"
}

// SignAs is Sign with another signer of the PKI.
func (p *PKI) SignAs(t testing.TB, s Signer, content []byte, attached bool) []byte {
	t.Helper()
	return p.sign(t, s.Cert, s.Key, content, attached)
}

// New creates the PKI with keys of type "rsa" (RSA-2048) or "p256".
func New(t testing.TB, keyType string) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{Dir: dir, CACert: filepath.Join(dir, "ca.pem"), SignerCert: filepath.Join(dir, "signer.pem"), SignerKey: filepath.Join(dir, "signer.key")}
	var newkey []string
	defer func() { p.newkey = newkey }()
	switch keyType {
	case "rsa":
		newkey = []string{"-newkey", "rsa:2048"}
	case "p256":
		newkey = []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}
	default:
		t.Fatalf("verifytest: key type %q", keyType)
	}
	write(t, filepath.Join(dir, "ext.cnf"), fmt.Sprintf(`[signer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
certificatePolicies = 0.4.0.194112.1.2
1.3.6.1.5.5.7.1.3 = DER:%s
`, hex.EncodeToString(qcStatements())))
	write(t, filepath.Join(dir, "ca.cnf"), `[ca]
default_ca = test
[test]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 10
certificate = ca.pem
private_key = ca.key
`)
	write(t, filepath.Join(dir, "index.txt"), "")
	write(t, filepath.Join(dir, "crlnumber"), "01\n")
	Run(t, dir, append(append([]string{"req", "-x509", "-new"}, newkey...), "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
		"-subj", "/CN=Poststelle Test CA/O=Poststelle Test/C=DE", "-days", "30",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")...)
	Run(t, dir, append(append([]string{"req", "-new"}, newkey...), "-nodes", "-keyout", "signer.key", "-out", "signer.csr",
		"-subj", "/CN=Erika Mustermann/GN=Erika/SN=Mustermann/C=DE")...)
	Run(t, dir, "x509", "-req", "-in", "signer.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "20", "-sha256", "-extfile", "ext.cnf", "-extensions", "signer", "-out", "signer.pem")
	Run(t, dir, "ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl")
	crlPEM, err := os.ReadFile(filepath.Join(dir, "ca.crl"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(crlPEM)
	if block == nil {
		t.Fatal("verifytest: openssl wrote no PEM CRL")
	}
	p.CRL = block.Bytes
	return p
}

// qcStatements is the DER of QCStatements with QcCompliance, QcSSCD and
// QcType esign (ETSI EN 319 412-5).
func qcStatements() []byte {
	return qcStatementsFor(QC{Compliance: true, SSCD: true, Type: "esign"})
}

// qcStatementsFor encodes the selected statements; nil for none.
func qcStatementsFor(qc QC) []byte {
	type statement struct {
		ID   asn1.ObjectIdentifier
		Info asn1.RawValue `asn1:"optional"`
	}
	var list []statement
	if qc.Compliance {
		list = append(list, statement{ID: asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}})
	}
	if qc.SSCD {
		list = append(list, statement{ID: asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}})
	}
	types := map[string]asn1.ObjectIdentifier{"esign": {0, 4, 0, 1862, 1, 6, 1}, "eseal": {0, 4, 0, 1862, 1, 6, 2}}
	if typ, ok := types[qc.Type]; ok {
		v, _ := asn1.Marshal([]asn1.ObjectIdentifier{typ})
		list = append(list, statement{ID: asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}, Info: asn1.RawValue{FullBytes: v}})
	}
	if len(list) == 0 {
		return nil
	}
	der, err := asn1.Marshal(list)
	if err != nil {
		panic(err)
	}
	return der
}

// Sign makes a CAdES-B signature (DER) over content, detached unless
// attached is set, with the CA's CRL in the SignedData.
func (p *PKI) Sign(t testing.TB, content []byte, attached bool) []byte {
	t.Helper()
	return p.sign(t, p.SignerCert, p.SignerKey, content, attached)
}

func (p *PKI) sign(t testing.TB, certFile, keyFile string, content []byte, attached bool) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "content")
	write(t, in, string(content))
	args := []string{"cms", "-sign", "-binary", "-cades", "-md", "sha256", "-in", in, "-signer", certFile, "-inkey", keyFile, "-outform", "DER"}
	if attached {
		args = append(args, "-nodetach")
	}
	der := Run(t, p.Dir, args...)
	out, err := AddCRL(der, p.CRL)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SignSMIME makes an S/MIME multipart/signed message (CRLF line ends) whose
// first part is entity, a MIME entity with its header.
func (p *PKI) SignSMIME(t testing.TB, entity []byte) []byte {
	t.Helper()
	sig := p.Sign(t, entity, false)
	b64 := wrap(sig)
	msg := "From: erika@example.org\r\nTo: poststelle@example.org\r\nSubject: Antrag\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig-boundary\"\r\n\r\n" +
		"This is an S/MIME signed message\r\n--sig-boundary\r\n" + string(entity) + "\r\n--sig-boundary\r\n" +
		"Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n" + b64 + "\r\n--sig-boundary--\r\n"
	return []byte(msg)
}

func wrap(b []byte) string {
	var sb strings.Builder
	s := encodeBase64(b)
	for len(s) > 76 {
		sb.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	sb.WriteString(s)
	return sb.String()
}

// Run runs openssl in dir and returns its standard output.
func Run(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// AddCRL inserts crl into the crls field of a DER ContentInfo holding
// SignedData. The signature does not cover that field.
func AddCRL(contentInfo, crl []byte) ([]byte, error) {
	in := cryptobyte.String(contentInfo)
	var ci, sd cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) ||
		!ci.ReadASN1(&sd, cbasn1.Tag(0).Constructed().ContextSpecific()) || !sd.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("verifytest: not a DER ContentInfo")
	}
	var elems [][]byte
	var tags []cbasn1.Tag
	for !sd.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !sd.ReadAnyASN1Element(&el, &tag) {
			return nil, fmt.Errorf("verifytest: malformed SignedData")
		}
		elems, tags = append(elems, el), append(tags, tag)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i, el := range elems {
					if i == len(elems)-1 {
						b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(crl) })
					}
					if tags[i] == cbasn1.Tag(1).Constructed().ContextSpecific() {
						continue // replace existing CRLs
					}
					b.AddBytes(el)
				}
			})
		})
	})
	return b.Bytes()
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
