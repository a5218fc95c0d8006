package evidencebundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/evidencebundle"
)

const raw = "From: buerger@example.org\r\nTo: poststelle@example.org\r\nSubject: Antrag\r\nMessage-ID: <1@example.org>\r\n\r\nSehr geehrte Damen und Herren,\r\n"

type fixture struct {
	b      *evidencebundle.Builder
	stream string
	pki    *verifytest.PKI
	key    ed25519.PublicKey
	anchor *trust.Store
}

func newFixture(t *testing.T, erased bool) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	store, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	tsaCert, tsaURL := tsptest.Start(t, tsptest.Normal)
	tsa := &tsp.Client{TSAs: []tsp.TSA{{Name: "test", URL: tsaURL}}}

	rawRef, _ := store.PutBytes(ctx, []byte(raw))
	reportRef, _ := store.PutBytes(ctx, []byte(`{"signatures":[]}`))
	htmlRef, _ := store.PutBytes(ctx, []byte("<html><body>Prüfprotokoll</body></html>"))
	sum := sha256.Sum256([]byte(raw))
	st, err := tsa.Timestamp(ctx, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	tokRef, _ := store.PutBytes(ctx, st.Raw)
	evRef, _ := store.PutBytes(ctx, []byte("De-Mail Abholbestätigung"))

	stream := gateway.StreamID(gateway.DefaultTenant, "smtp:1")
	received := "ev-received"
	payloads := []struct {
		id string
		p  gateway.Payload
	}{
		{received, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<1@example.org>", From: gateway.Address{Address: "buerger@example.org"},
			Subject: "Antrag", ReceivedAt: time.Unix(1764000000, 0).UTC(), Raw: rawRef,
			Transport: gateway.TransportEvidence{RemoteAddr: "192.0.2.1:25", Received: []string{"from mx.example.org by poststelle"}}}},
		{"ev-verified", &gateway.SignaturesVerified{Report: reportRef, ReportHTML: htmlRef, ValidationTime: time.Unix(1764000001, 0).UTC()}},
		{"ev-stamped", &gateway.TimestampApplied{TSA: "test", Token: tokRef, GenTime: st.Token.Info.GenTime, Imprint: hex.EncodeToString(sum[:]), Serial: st.Token.Info.SerialNumber.String()}},
		{"ev-routed", &gateway.MessageRouted{}},
		{"ev-evidence", &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelDeMail, Kind: gateway.EvidenceRetrieved, Evidence: evRef, AttestedAt: time.Unix(1764000100, 0).UTC()}},
	}
	var evs []eventstore.Event
	for _, p := range payloads {
		e, err := gateway.Encode(gateway.Meta{ID: p.id, Stream: stream, CorrelationID: received}, p.p)
		if err != nil {
			t.Fatal(err)
		}
		if p.id != received {
			e.CausationID = received
		}
		evs = append(evs, e)
	}
	if erased {
		evs = append(evs, eventstore.Event{ID: "ev-erased", Tenant: gateway.DefaultTenant, Stream: stream, Type: "ContentErased", Version: 1,
			Data: []byte(`{"erasedAt":"2036-01-01T00:00:00Z","rule":"office demo: 10 years","reason":"retention ended"}`)})
	}
	// Another message's events in the same partition, so that the proofs
	// have siblings.
	other, _ := gateway.Encode(gateway.Meta{ID: "ev-other", Stream: "msg-other"}, &gateway.MessageRouted{})
	if _, err := l.Append(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	p := verifytest.New(t, "p256")
	anchor := trust.NewStore()
	tsaPEM := filepath.Join(dir, "tsa.pem")
	os.WriteFile(tsaPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsaCert.CertDER}), 0o644)
	if err := anchor.LoadAnchors(ctx, p.CACert, tsaPEM); err != nil {
		t.Fatal(err)
	}
	var blobs blob.Opener = store
	if erased {
		blobs = &erasedStore{Opener: store, gone: map[string]error{rawRef.SHA256: blob.ErrErased, htmlRef.SHA256: blob.ErrNotFound}}
	}
	b := &evidencebundle.Builder{Log: l, Blobs: blobs, Signer: signer, TSA: tsa, Version: "test", Sealer: opensslSealer(t, p)}
	return &fixture{b: b, stream: stream, pki: p, key: signer.Public().(ed25519.PublicKey), anchor: anchor}
}

// sealer signs with openssl cms -cades (CAdES-B, an independent
// implementation), without the CRL verifytest adds: a bundle's seal
// carries no revocation data.
type sealer struct {
	t   *testing.T
	p   *verifytest.PKI
	crt *x509.Certificate
}

func opensslSealer(t *testing.T, p *verifytest.PKI) *sealer {
	b, err := os.ReadFile(p.SignerCert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &sealer{t: t, p: p, crt: c}
}

func (s *sealer) Seal(_ context.Context, m []byte) ([]byte, error) {
	in := filepath.Join(s.t.TempDir(), "manifest")
	os.WriteFile(in, m, 0o644)
	return verifytest.Run(s.t, s.p.Dir, "cms", "-sign", "-binary", "-cades", "-md", "sha256", "-in", in,
		"-signer", s.p.SignerCert, "-inkey", s.p.SignerKey, "-outform", "DER"), nil
}

func (s *sealer) Certificates() []*x509.Certificate { return []*x509.Certificate{s.crt} }

// erasedStore has lost some blobs, as crypto-shredding leaves them: a
// shredded blob reads as ErrErased, one a store without keys removed is
// not found.
type erasedStore struct {
	blob.Opener
	gone map[string]error
}

func (s *erasedStore) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if err := s.gone[ref.SHA256]; err != nil {
		return nil, err
	}
	return s.Opener.Open(ctx, ref)
}

func (f *fixture) build(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := f.b.Build(context.Background(), gateway.DefaultTenant, f.stream, &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func check(t *testing.T, data []byte, opts evidencebundle.VerifyOptions) *evidencebundle.Result {
	t.Helper()
	res, err := evidencebundle.Verify(context.Background(), data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBundleVerifies(t *testing.T) {
	f := newFixture(t, false)
	data := f.build(t)
	res := check(t, data, evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
	for _, fd := range res.Findings {
		t.Logf("%-18s ok=%v %s", fd.Check, fd.OK, fd.Detail)
	}
	if !res.OK() {
		t.Fatalf("failed: %+v", res.Failed())
	}
	for _, want := range []string{"container", "manifest", "seal", "index", "gateway-key", "head", "head-timestamp", "event", "inclusion", "blobs", "original", "receipt-timestamp"} {
		found := false
		for _, fd := range res.Findings {
			found = found || fd.Check == want
		}
		if !found {
			t.Errorf("no %s finding", want)
		}
	}
	idx := res.Index
	if idx.Message == nil || idx.Message.Original != "message/original.eml" || idx.Message.ReceiptTimestamp == nil || len(idx.Events) != 5 {
		t.Fatalf("index: %+v", idx)
	}
	// Without anchors and key the bundle still checks, and says so.
	res = check(t, data, evidencebundle.VerifyOptions{})
	if !res.OK() {
		t.Fatalf("without anchors: %+v", res.Failed())
	}
	// Another gateway key is refused.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)).Public()
	if res := check(t, data, evidencebundle.VerifyOptions{Key: other}); res.OK() || res.Failed()[0].Check != "gateway-key" {
		t.Fatalf("another key: %+v", res.Failed())
	}
	// Other trust anchors refuse the seal.
	if res := check(t, data, evidencebundle.VerifyOptions{Trust: trust.NewStore()}); res.OK() || res.Failed()[0].Check != "seal" {
		t.Fatalf("no anchors: %+v", res.Failed())
	}
}

// TestEveryByteCounts changes one byte of every file of the container in
// turn (re-zipped, so that the archive itself stays readable) and wants
// the bundle refused each time.
func TestEveryByteCounts(t *testing.T) {
	f := newFixture(t, false)
	data := f.build(t)
	entries := unzip(t, data)
	for i, e := range entries {
		for _, at := range []int{0, len(e.data) / 2, len(e.data) - 1} {
			t.Run(e.name, func(t *testing.T) {
				changed := append([]byte(nil), e.data...)
				changed[at] ^= 0x01
				mod := append([]entry(nil), entries...)
				mod[i] = entry{name: e.name, data: changed, store: e.store}
				res := check(t, rezip(t, mod), evidencebundle.VerifyOptions{Key: f.key})
				if res.OK() {
					t.Fatalf("byte %d of %s changed, and the bundle still verifies", at, e.name)
				}
			})
		}
	}
	// And a changed byte in the stored (compressed) bytes of every entry:
	// the ZIP's CRC, the inflater or the hashes catch it. (The ZIP's own
	// headers, dates and comments are no file's content and nobody signs
	// them, in ASiC as in any ZIP.)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		off, err := zf.DataOffset()
		if err != nil || zf.CompressedSize64 == 0 {
			t.Fatalf("%s: offset %v, %d bytes", zf.Name, err, zf.CompressedSize64)
		}
		changed := append([]byte(nil), data...)
		changed[off+int64(zf.CompressedSize64/2)] ^= 0x40
		if res := check(t, changed, evidencebundle.VerifyOptions{Key: f.key}); res.OK() {
			t.Errorf("a stored byte of %s changed, and the bundle still verifies", zf.Name)
		}
	}
}

func TestErasedBundle(t *testing.T) {
	f := newFixture(t, true)
	data := f.build(t)
	res := check(t, data, evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
	for _, fd := range res.Findings {
		t.Logf("%-18s ok=%v %s", fd.Check, fd.OK, fd.Detail)
	}
	if !res.OK() {
		t.Fatalf("failed: %+v", res.Failed())
	}
	if res.Index.Erased == nil || res.Index.Erased.Rule != "office demo: 10 years" || len(res.Index.Missing) != 2 {
		t.Fatalf("erasure: %+v, missing %+v", res.Index.Erased, res.Index.Missing)
	}
	if _, ok := fileOf(t, data, "message/original.eml"); ok {
		t.Fatal("an erased original is in the bundle")
	}
}

func TestNoSuchStream(t *testing.T) {
	f := newFixture(t, false)
	if err := f.b.Build(context.Background(), gateway.DefaultTenant, "msg-none", io.Discard); err == nil {
		t.Fatal("built a bundle of nothing")
	}
}

type entry struct {
	name  string
	data  []byte
	store bool
}

func unzip(t *testing.T, data []byte) []entry {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{name: zf.Name, data: b, store: zf.Method == zip.Store})
	}
	return out
}

func rezip(t *testing.T, entries []entry) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		m := zip.Deflate
		if e.store {
			m = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	zw.Close()
	return b.Bytes()
}

func fileOf(t *testing.T, data []byte, name string) ([]byte, bool) {
	for _, e := range unzip(t, data) {
		if e.name == name {
			return e.data, true
		}
	}
	return nil, false
}

// TestWitnessedHead: without a TSA at bundle time, the newest timestamped
// head a witness directory keeps stands in, when it covers the message.
func TestWitnessedHead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, false)
	tsa := f.b.TSA
	f.b.TSA = nil
	dir := t.TempDir()
	heads, err := integrity.CurrentHeads(ctx, f.b.Log, f.key)
	if err != nil {
		t.Fatal(err)
	}
	note, err := integrity.SignHeads(f.b.Signer, heads)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(note)
	st, err := tsa.Timestamp(ctx, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	w := &witness.Dir{Path: dir}
	if err := w.Publish(ctx, &witness.Publication{Note: note, Heads: heads, Response: witness.GrantedResponse(st.Raw), Size: heads[0].Size, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// An older, smaller head that does not cover the message is passed over.
	small := []integrity.Head{{LogID: heads[0].LogID, Partition: 0, Size: 1, Root: heads[0].Root}}
	if sn, err := integrity.SignHeads(f.b.Signer, small); err == nil {
		w.Publish(ctx, &witness.Publication{Note: sn, Heads: small, Response: witness.GrantedResponse(st.Raw), Size: 1, At: time.Now()})
	}

	res := check(t, f.build(t), evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
	if !res.OK() {
		t.Fatalf("failed: %+v", res.Failed())
	}
	if h := res.Index.Head; h.Timestamp != "" || h.Source != "signed at bundle time, without a timestamp" {
		t.Fatalf("without witness dirs: head %+v", h)
	}
	f.b.WitnessDirs = []string{dir}
	res = check(t, f.build(t), evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
	if !res.OK() {
		t.Fatalf("failed: %+v", res.Failed())
	}
	if h := res.Index.Head; h.Timestamp != evidencebundle.HeadStampName || !strings.HasPrefix(h.Source, "witnessed head head-") {
		t.Fatalf("head %+v", h)
	}
}
