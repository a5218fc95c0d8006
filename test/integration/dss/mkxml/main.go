// Command mkxml makes the oracle's own XAdES and ASiC cases: XAdES by the
// generated PKI of verifytest (CA certificate and CRL as XAdES values),
// enveloped, enveloping and detached, one XAdES-T with a
// timestamp of the test TSA, RSA-PSS and brainpool signatures by
// self-signed keys, and the negatives (changed content, a wrapped
// signature); ASiC-S and ASiC-E containers with CAdES and XAdES, with a
// changed, a missing and an unsigned extra data object. Signature values
// come from openssl. It writes them to ../generated/xml and
// ../generated/asic and the jobs to ../jobs-xml.tsv. The outputs are
// committed: DSS's golden verdicts refer to these exact bytes, so rerun it
// only together with the oracle (see README.md).
package main

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/asic/asictest"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/crypto/xmldsig/xmldsigtest"
)

// tb lets the test helpers run outside a test: failures end the program.
type tb struct{ testing.TB }

func (tb) Helper()                   {}
func (tb) Fatal(a ...any)            { log.Fatal(a...) }
func (tb) Fatalf(f string, a ...any) { log.Fatalf(f, a...) }
func (tb) Errorf(f string, a ...any) { log.Fatalf(f, a...) }
func (tb) TempDir() string           { d, err := os.MkdirTemp("", "mkxml-"); must(err); return d }
func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

const antragXML = `<?xml version="1.0" encoding="UTF-8"?>
<antrag xmlns="urn:example:antrag"><az>63-2026-117</az><text>Guten Tag</text></antrag>`

var sha256AlgID, _ = hex.DecodeString("300d06096086480165030402010500")

type gen struct {
	jobs []string
	at   string
}

func (g *gen) write(dir, name string, b []byte) string {
	must(os.MkdirAll(filepath.Join("..", "generated", dir), 0o755))
	must(os.WriteFile(filepath.Join("..", "generated", dir, name), b, 0o644))
	return "generated/" + dir + "/" + name
}

func (g *gen) job(run, sig, detached, trust string) {
	g.jobs = append(g.jobs, fmt.Sprintf("%s/%s\t%s\t%s\t%s\t%s", run, sig, sig, detached, trust, g.at))
}

func main() {
	g := &gen{at: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	p := verifytest.New(tb{}, "p256")
	caPEM, err := os.ReadFile(p.CACert)
	must(err)
	tsa := tsptest.New(tb{}, tsptest.Normal)
	ca := g.write("xml", "ca.pem", caPEM)
	tsaCert := g.write("xml", "tsa.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.CertDER}))
	trust := ca + "," + tsaCert
	blk, _ := pem.Decode(caPEM)
	k := xmldsigtest.KeyFromFiles(tb{}, p.SignerKey, p.SignerCert, xmldsigtest.ECDSASHA256)
	lt := xmldsigtest.Spec{XAdES: true, CertificateValues: [][]byte{blk.Bytes}, CRLValues: [][]byte{p.CRL}}
	content := []byte("Antrag auf Erteilung einer Baugenehmigung\r\nAz. 63-2026-117\r\n")
	contentFile := g.write("xml", "content.txt", content)
	tampered := g.write("xml", "tampered.txt", append([]byte("X"), content[1:]...))

	sign := func(s xmldsigtest.Spec) []byte { return xmldsigtest.Sign(tb{}, k, s) }
	with := func(shape string) xmldsigtest.Spec {
		s := lt
		s.Shape, s.Document, s.Content = shape, antragXML, content
		s.DetachedNames, s.Contents = []string{"content.txt"}, map[string][]byte{"content.txt": content}
		return s
	}
	enveloped := sign(with(xmldsigtest.Enveloped))
	enveloping := sign(with(xmldsigtest.Enveloping))
	for name, b := range map[string][]byte{"enveloped.xml": enveloped, "enveloping.xml": enveloping} {
		f := g.write("xml", name, b)
		g.job("gen-at-signing", f, "-", trust)
		g.job("gen-untrusted", f, "-", "-")
	}
	det := g.write("xml", "detached.xml", sign(with(xmldsigtest.Detached)))
	g.job("gen-at-signing", det, contentFile, trust)
	g.job("gen-tampered", det, tampered, trust)
	changed := g.write("xml", "enveloped-changed.xml", []byte(strings.Replace(string(enveloped), "63-2026-117", "63-2026-118", 1)))
	g.job("gen-tampered", changed, "-", trust)
	// The signed document moved into a ds:Object of the signature, a new
	// unsigned document around it: XSW.
	body := strings.TrimPrefix(string(enveloping), `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	wrapped := g.write("xml", "wrapped.xml", []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<antrag xmlns="urn:example:antrag"><az>99-FAKE</az>`+body+`</antrag>`))
	g.job("gen-tampered", wrapped, "-", trust)
	ts := with(xmldsigtest.Enveloped)
	ts.Timestamp = func(d []byte) []byte { return tsa.Token(sha256AlgID, d, nil) }
	g.job("gen-at-signing", g.write("xml", "xades-t.xml", sign(ts)), "-", trust)
	for _, kt := range []string{"rsa-pss", "brainpoolP256r1"} {
		sk := xmldsigtest.NewKey(tb{}, kt)
		f := g.write("xml", "enveloped-"+kt+".xml", xmldsigtest.Sign(tb{}, sk, xmldsigtest.Spec{Shape: xmldsigtest.Enveloped, Document: antragXML, XAdES: true}))
		g.job("gen-untrusted", f, "-", "-")
	}

	// ASiC containers.
	antrag := asictest.Entry{Name: "antrag.txt", Data: content}
	plan := asictest.Entry{Name: "anlagen/lageplan.txt", Data: []byte("Lageplan Flurstück 117\n")}
	extra := asictest.Entry{Name: "nachgereicht.txt", Data: []byte("nicht signiert\n")}
	changedObj := asictest.Entry{Name: antrag.Name, Data: []byte("Antrag auf Abriss\n")}
	xades := func(files ...asictest.Entry) asictest.Entry {
		s := lt
		s.Shape, s.Contents = xmldsigtest.Detached, map[string][]byte{}
		for _, f := range files {
			s.DetachedNames = append(s.DetachedNames, f.Name)
			s.Contents[f.Name] = f.Data
		}
		return asictest.Entry{Name: "META-INF/signatures.xml", Data: asictest.XAdESSignatures(sign(s))}
	}
	cadesS := asictest.Entry{Name: "META-INF/signature.p7s", Data: p.Sign(tb{}, antrag.Data, false)}
	manifest := asictest.Entry{Name: "META-INF/ASiCManifest001.xml", Data: asictest.Manifest("META-INF/signature001.p7s", antrag, plan)}
	cadesE := asictest.Entry{Name: "META-INF/signature001.p7s", Data: p.Sign(tb{}, manifest.Data, false)}
	mS, mE := asictest.MimeType(asic.MimeTypeS), asictest.MimeType(asic.MimeTypeE)
	xS, xE := xades(antrag), xades(antrag, plan)
	// The OpenDocument manifest DSS's default policy wants in ASiC-E
	// with XAdES (see crypto/asic/DIFFERENCES.md, A1).
	odf := asictest.Entry{Name: "META-INF/manifest.xml", Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="` + asic.MimeTypeE + `"/><manifest:file-entry manifest:full-path="antrag.txt" manifest:media-type="text/plain"/><manifest:file-entry manifest:full-path="anlagen/lageplan.txt" manifest:media-type="text/plain"/></manifest:manifest>`)}
	containers := []struct {
		name    string
		run     string
		entries []asictest.Entry
	}{
		{"s-cades.asics", "gen-at-signing", []asictest.Entry{mS, antrag, cadesS}},
		{"s-cades-changed.asics", "gen-tampered", []asictest.Entry{mS, changedObj, cadesS}},
		{"s-xades.asics", "gen-at-signing", []asictest.Entry{mS, antrag, xS}},
		{"e-xades.asice", "gen-at-signing", []asictest.Entry{mE, antrag, plan, xE}},
		{"e-xades-odf.asice", "gen-at-signing", []asictest.Entry{mE, antrag, plan, odf, xE}},
		{"e-xades-odf-changed.asice", "gen-tampered", []asictest.Entry{mE, changedObj, plan, odf, xE}},
		{"e-xades-extra.asice", "gen-tampered", []asictest.Entry{mE, antrag, plan, extra, xE}},
		{"e-xades-changed.asice", "gen-tampered", []asictest.Entry{mE, changedObj, plan, xE}},
		{"e-xades-missing.asice", "gen-tampered", []asictest.Entry{mE, antrag, xE}},
		{"e-cades.asice", "gen-at-signing", []asictest.Entry{mE, antrag, plan, manifest, cadesE}},
		{"e-cades-changed.asice", "gen-tampered", []asictest.Entry{mE, changedObj, plan, manifest, cadesE}},
		{"e-cades-extra.asice", "gen-tampered", []asictest.Entry{mE, antrag, plan, extra, manifest, cadesE}},
	}
	for _, c := range containers {
		f := g.write("asic", c.name, asictest.Zip(tb{}, c.entries...))
		g.job(c.run, f, "-", ca)
		if c.run == "gen-at-signing" {
			g.job("gen-untrusted", f, "-", "-")
		}
	}

	f, err := os.Create(filepath.Join("..", "jobs-xml.tsv"))
	must(err)
	defer f.Close()
	fmt.Fprintln(f, "# name\tsignature\tdetached\ttrust\tat   (generated by mkxml; see README.md)")
	for _, j := range g.jobs {
		fmt.Fprintln(f, j)
	}
}
