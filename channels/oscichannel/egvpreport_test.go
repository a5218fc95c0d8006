package oscichannel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/egvprecord"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// TestSamplesPruefprotokoll takes the three real EGVP messages the way the
// channel records them (parts, egvp section, transport certificate) through
// the verification projection: the Prüfprotokoll names the route their
// Prüfvermerk names, the beBPo messages with their VHN satisfy the written
// form without a QES and the court's message (Justiz VHN) does not, none of
// their documents carries a signature (their Prüfvermerk lists none), and
// the same beBPo message whose process card the intermediary did not
// vouch for has no proof of origin and no written form.
func TestSamplesPruefprotokoll(t *testing.T) {
	for _, tc := range []struct {
		name              string
		damaged, verified bool
		origin            string
		satisfied         bool
	}{
		{"Testnachricht_1", false, true, "vhn", false},
		{"TestnachrichtEeb_1", false, true, "vhn", true},
		{"Testnachricht_xjustiz321", true, true, "vhn", true},
		{"Testnachricht_xjustiz321", true, false, "sender-signed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bs, err := blob.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dir := corpus.Path(t, "egvp", "Messages", tc.name)
			c := &core{cfg: Config{}, deps: gateway.IntakeDeps{Blobs: bs}}
			d := sampleDelivery(t, dir, c.spool(), tc.damaged, tc.verified)
			m, err := egvp.Read(ctx, d, egvp.Config{}, egvp.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			msg := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, Subject: m.Subject, ReceivedAt: m.Received, Metadata: map[string]string{}}
			for i, cc := range d.Envelope.ContentPackage.Containers {
				c.listContents(ctx, "c"+string(rune('1'+i)), cc, d.Attachment, msg)
			}
			if sc := d.Envelope.NonIntermediaryCertificates.Role("SignatureCertificateOriginator"); len(sc) == 1 {
				msg.Metadata[MetaOriginatorSignature] = base64.StdEncoding.EncodeToString(sc[0].Cert.Raw)
			}
			egvprecord.Apply(msg, m)

			hs, err := verification.Handlers(ctx, verification.Config{}, verification.Deps{Blobs: bs})
			if err != nil {
				t.Fatal(err)
			}
			out, err := hs[0].Handle(ctx, &eventstore.Event{RecordedAt: m.Received}, msg)
			if err != nil {
				t.Fatal(err)
			}
			sv := out[0].(*gateway.SignaturesVerified)
			if msg.EGVP.Origin != tc.origin || sv.WrittenFormSatisfied != tc.satisfied || len(sv.Signatures) != 0 {
				t.Errorf("origin %s, written form %v (%s), %d signatures; want %s, %v, none",
					msg.EGVP.Origin, sv.WrittenFormSatisfied, sv.WrittenFormReason, len(sv.Signatures), tc.origin, tc.satisfied)
			}
			html := readBlob(t, bs, sv.ReportHTML)
			var pv struct {
				Route string `xml:"Uebermittlungsweg"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "pruefvermerk.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := xml.Unmarshal(raw, &pv); err != nil {
				t.Fatal(err)
			}
			want := []string{"Herkunftsnachweis / Übermittlungsweg", msg.EGVP.TransportCertificate, msg.EGVP.SenderSafeID}
			if tc.verified {
				want = append(want, pv.Route, "vertrauenswürdiger Herkunftsnachweis (VHN) geprüft", "CN=VHN - ")
			} else {
				want = append(want, "the intermediary&#39;s signature over the process card was not verified", "Angabe der Visitenkarte, nicht nachgewiesen",
					"Auffälligkeiten", "egvp: the Visitenkarte claims a bebpo mailbox, the transport certificate proves none")
			}
			for _, w := range want {
				if !strings.Contains(html, w) {
					t.Errorf("Prüfprotokoll lacks %q", w)
				}
			}
		})
	}
}

func readBlob(t *testing.T, bs *blob.Store, ref blob.Ref) string {
	t.Helper()
	rc, err := bs.Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sampleDelivery reads an exported sample as the channel hands it to egvp,
// its attachments spooled into the blob store. The export of
// Testnachricht_xjustiz321 broke its binary attachments (see
// osci.TestEGVPSamples): its envelope is taken out by hand and the
// attachments from attachments/.
func sampleDelivery(t *testing.T, dir string, sp blobSpool, damaged, verified bool) egvp.Delivery {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(dir, "oscicontentdata.osci"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := osci.ReadMessage(ctx, bytes.NewReader(raw), osci.Limits{}, sp)
	switch {
	case damaged && !errors.Is(err, osci.ErrFormat):
		t.Fatalf("damaged sample read with error %v", err)
	case damaged:
		mp = &osci.Multipart{Envelope: envelopePart(t, raw)}
		files, _ := filepath.Glob(filepath.Join(dir, "attachments", "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sp.Put(ctx, f, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			mp.Parts = append(mp.Parts, &osci.Part{ContentID: filepath.Base(f), Size: int64(len(data)), SHA256: sha256.Sum256(data), Data: s})
		}
	case err != nil:
		t.Fatal(err)
	}
	env, err := osci.ParseEnvelope(mp.Envelope, osci.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return egvp.Delivery{Envelope: env, Attachment: mp.Part, IntermediaryVerified: verified}
}

func envelopePart(t *testing.T, raw []byte) []byte {
	t.Helper()
	_, rest, _ := bytes.Cut(raw, []byte("boundary="))
	b, _, _ := bytes.Cut(rest, []byte(";"))
	p, err := multipart.NewReader(bytes.NewReader(raw), string(b)).NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
