package demail

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// The test provider is demailtest's (shared with the integration test);
// these wrappers keep the unit tests short.

// testCA is a CA made at test time, standing in for the De-Mail PKI.
type testCA struct {
	*demailtest.CA
	key  crypto.Signer
	x    *x509.Certificate
	cert *cert.Certificate
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	ca, err := demailtest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.Parse(ca.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{CA: ca, key: ca.Key, x: ca.Cert, cert: c}
}

// issue makes a provider signature certificate valid from notBefore to
// notAfter for key, with exts (such as qcStatements) added.
func (ca *testCA) issue(t testing.TB, key crypto.Signer, notBefore, notAfter time.Time, exts ...pkix.Extension) []byte {
	t.Helper()
	der, err := ca.IssueSigning(key, notBefore, notAfter, exts...)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// stamp is a message as the test provider protects it (demailtest.Stamp).
type stamp struct {
	fields [][2]string // header fields in order
	body   string      // with a single final CRLF
	alg    string      // "a" tag
	key    crypto.Signer
	cert   []byte   // DER; nil for hash-only
	h      []string // "h" tag; nil = the TR's list for these fields
	extra  string   // appended inside the tag list, e.g. "l=3;"
}

func (s stamp) message(t testing.TB) []byte {
	t.Helper()
	m, err := demailtest.Stamp{Fields: s.fields, Body: s.body, Alg: s.alg, Key: s.key, Cert: s.cert, H: s.h, Extra: s.extra}.Message()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// trHeaderOrder is clause 3.1.21's list, as the test provider writes it.
var trHeaderOrder = demailtest.TRHeaderOrder

// normalFields is a normal De-Mail with every field table 1 requires.
func normalFields(authoritative string) [][2]string { return demailtest.NormalFields(authoritative) }

// TestProviderConfirmation reads a confirmation the test provider builds
// from a message it stamped (the path the integration test takes): every
// confirmation kind links to the message by private id and message id,
// and both the integrity protection and the (qualified) XML signature
// verify.
func TestProviderConfirmation(t *testing.T) {
	w := newWorld(t)
	c := Config{Providers: []ProviderConfig{{Name: providerName, CAFile: caFile(t, w.ca)}}}
	w.qualify(t, &c)
	qualified, err := c.LoadTrust()
	if err != nil {
		t.Fatal(err)
	}
	orig := stamp{fields: normalFields("yes"), body: body, alg: "sha256/rsa", key: w.rsaKey, cert: w.rsaCert}.message(t)
	at := time.Date(2026, 3, 3, 10, 16, 0, 0, time.UTC)
	for typ, kind := range map[MessageType]gateway.EvidenceKind{TypeConfirmationOfDispatch: gateway.EvidenceDispatched,
		TypeConfirmationOfReceipt: gateway.EvidenceDelivered, TypeConfirmationOfRetrieve: gateway.EvidenceRetrieved} {
		t.Run(string(typ), func(t *testing.T) {
			c := demailtest.Confirmation{Type: string(typ), Of: orig, To: "erika.mustermann@mustermann.de-mail.example",
				ID: "c-1@provider.de-mail.example", Time: at, DeliveryTime: at.Add(-time.Minute)}
			fields, err := c.Fields()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := c.XML()
			if err != nil {
				t.Fatal(err)
			}
			if doc, err = demailtest.SignXML(doc, w.rsaKey, w.rsaCert); err != nil {
				t.Fatal(err)
			}
			msg := stamp{fields: fields, body: demailtest.Body(doc), alg: "sha256/rsa", key: w.rsaKey, cert: w.rsaCert}.message(t)
			ev, ok := Confirmation(msg, blob.Ref{}, qualified, time.Now())
			if !ok {
				t.Fatal("not a confirmation")
			}
			if len(ev.Problems) != 0 || ev.Kind != kind || ev.Verification.Indication != "TOTAL_PASSED" ||
				!strings.Contains(ev.Verification.Detail, "XML signature: verified") {
				t.Fatalf("evidence %+v, problems %q", ev.Verification, ev.Problems)
			}
			want := []gateway.EvidenceReference{{Kind: "privateId", Value: "Az-63-2026-117"},
				{Kind: "messageId", Value: "4711@provider.de-mail.example"}, {Kind: "messageId", Value: "<4711@provider.de-mail.example>"}}
			if !equalRefs(ev.References, want) || !ev.AttestedAt.Equal(at) {
				t.Errorf("references %v attested %v", ev.References, ev.AttestedAt)
			}
			integrity := demailtest.ParseFields(orig).Get("X-de-mail-integrity")
			var ack struct{ Hash string }
			if err := xml.Unmarshal([]byte(doc), &ack); err != nil || ack.Hash != integrity {
				t.Logf("Hash %q (%v)", ack.Hash, err)
				t.Errorf("the XML's Hash is not the confirmed message's X-de-mail-integrity %q", integrity)
			}
		})
	}
}
