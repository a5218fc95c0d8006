package osci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// libraryCase is a capture of the reference library's request (testdata/library) and
// what the peer was asked to send.
type libraryCase struct {
	dir  string
	typ  MessageType
	args []string
}

func (c libraryCase) arg(name string) []string {
	var out []string
	for i := 0; i+1 < len(c.args); i++ {
		if c.args[i] == name {
			out = append(out, c.args[i+1])
		}
	}
	return out
}

func libraryCases(t *testing.T) []libraryCase {
	dirs, err := filepath.Glob(filepath.Join("testdata", "library", "*"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := map[string]MessageType{
		"storedelivery": StoreDelivery, "forwarddelivery": ForwardDelivery, "fetchdelivery": FetchDelivery,
		"fetchprocesscard": FetchProcessCard, "getmessageid": GetMessageID, "initdialog": InitDialog,
	}
	var out []libraryCase
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		name, _, _ := strings.Cut(filepath.Base(d), "-")
		typ, ok := prefix[name]
		if !ok {
			t.Fatalf("capture %s of an unknown request", d)
		}
		c := libraryCase{dir: d, typ: typ}
		raw, err := os.ReadFile(filepath.Join(d, "peer-args.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &c.args); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) < 10 {
		t.Fatalf("only %d captures", len(out))
	}
	return out
}

// TestLibraryCaptures reads what the Governikus library 2.4.1 sent: the HTTP body is a
// transport-encrypted message (the library writes the MIME headers into the body and
// sends Content-Type text/xml), the intermediary's key opens it, the inner request
// parses as its type, its client signature holds for everything read, and the
// content encrypted for the addressee opens with Bob's key, attachments as the peer
// made them.
func TestLibraryCaptures(t *testing.T) {
	for _, c := range libraryCases(t) {
		t.Run(filepath.Base(c.dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(c.dir, "request.http"))
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			spool := DirSpool{Dir: t.TempDir()}
			outer, err := ReadMessage(context.Background(), req.Body, Limits{}, spool)
			if err != nil {
				t.Fatal(err)
			}
			oenv, err := ParseEnvelope(outer.Envelope, Limits{})
			if err != nil || oenv.Type != Encrypted {
				t.Fatalf("outer envelope %v: %v", oenv, err)
			}
			inner, _, err := DecryptTransport(context.Background(), oenv, outer, decrypterOf(t, "osci_manager_cipher_4096"), Limits{}, spool)
			if err != nil {
				t.Fatal(err)
			}
			checkLibraryRequest(t, c, inner, spool)
			plain, err := os.Open(filepath.Join(c.dir, "request.plain.mime"))
			if os.IsNotExist(err) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			copyMsg, err := ReadMessage(context.Background(), plain, Limits{}, spool)
			if err != nil {
				t.Fatal(err)
			}
			checkLibraryRequest(t, c, copyMsg, spool)
		})
	}
}

func checkLibraryRequest(t *testing.T, c libraryCase, m *Multipart, spool Spool) {
	t.Helper()
	env, err := ParseEnvelope(m.Envelope, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != c.typ {
		t.Fatalf("type %s, want %s", env.Type, c.typ)
	}
	if env.ClientSignature != nil {
		chk, err := env.VerifySignature(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if !chk.Valid() {
			t.Fatalf("client signature: %v", chk.Err())
		}
		wantAlg := xmldsig.AlgRSASHA256
		if a := c.arg("--sig-alg"); len(a) == 1 && a[0] == "rsa-pss" {
			wantAlg = xmldsig.AlgRSAPSSSHA256
		}
		if chk.Result.Algorithm != wantAlg {
			t.Errorf("signature method %s, want %s", chk.Result.Algorithm, wantAlg)
		}
	} else if len(c.arg("--sig-alg")) > 0 {
		t.Fatal("a request the peer signed arrived unsigned")
	}
	// The library base64-encodes the id it is given on the wire.
	if id := c.arg("--message-id"); len(id) == 1 && (c.typ == StoreDelivery || c.typ == ForwardDelivery) {
		if got, _ := base64.StdEncoding.DecodeString(env.Operation.MessageID); string(got) != id[0] {
			t.Errorf("message id %q, want base64 of %q", env.Operation.MessageID, id[0])
		}
	}
	if d := c.arg("--dialog"); len(d) == 1 {
		conv, _, _ := strings.Cut(d[0], ",")
		if env.ControlBlock.ConversationID != conv {
			t.Errorf("conversation id %q, want %q", env.ControlBlock.ConversationID, conv)
		}
	}
	if u := c.arg("--recipient-url"); len(u) == 1 && env.Operation.ContentReceiver != u[0] {
		t.Errorf("content receiver %q, want %q", env.Operation.ContentReceiver, u[0])
	}
	if err := env.CheckAttachments(m); err != nil {
		t.Fatal(err)
	}
	sizes := c.arg("--attach")
	if env.ContentPackage == nil {
		if len(sizes) > 0 {
			t.Fatal("attachments but no content package")
		}
		return
	}
	var got []int64
	for _, ed := range env.ContentPackage.Encrypted {
		dc, err := DecryptContainer(context.Background(), ed, m, decrypterOf(t, "bob_cipher_4096"), Limits{}, spool)
		if err != nil {
			t.Fatal(err)
		}
		checks, err := VerifyContainer(context.Background(), dc.Doc, dc.Container,
			[]*Certificates{env.NonIntermediaryCertificates, env.IntermediaryCertificates},
			func(cid string) *Part { return dc.Attachments[cid] })
		if err != nil {
			t.Fatal(err)
		}
		if len(checks) != 1 || !checks[0].Valid() || checks[0].Signer == nil || checks[0].Signer.Role != "SignatureCertificateOriginator" {
			t.Fatalf("content signatures: %d, %v", len(checks), checks[0].Err())
		}
		// The same signature over the ciphertexts, as if the decrypted attachments
		// were swapped for others, does not hold.
		if bad, _ := VerifyContainer(context.Background(), dc.Doc, dc.Container,
			[]*Certificates{env.NonIntermediaryCertificates}, m.Part); len(dc.Attachments) > 0 && bad[0].Valid() {
			t.Fatal("content signature holds over the encrypted attachments")
		}
		for _, ct := range dc.Container.Contents {
			if a := ct.AttachmentID(); a != "" {
				p := dc.Attachments[a]
				if p == nil {
					t.Fatalf("content refers to <%s>, which was not decrypted", a)
				}
				got = append(got, p.Size)
			}
		}
	}
	if len(got) != len(sizes) {
		t.Fatalf("attachments of %v bytes, the peer attached %v", got, sizes)
	}
	for i, s := range sizes {
		if n, _ := strconv.ParseInt(s, 10, 64); got[i] != n {
			t.Errorf("attachment %d: %d bytes, want %d", i, got[i], n)
		}
	}
}

// TestPassDeliveryOn: an intermediary takes the library's storeDelivery content package
// and attachments into a responseToFetchDelivery; the recipient decrypts it and the
// author's signature still holds.
func TestPassDeliveryOn(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "library", "storedelivery-rsa-pss", "request.plain.mime"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spool := DirSpool{Dir: t.TempDir()}
	in, err := ReadMessage(context.Background(), f, Limits{}, spool)
	if err != nil {
		t.Fatal(err)
	}
	store, err := ParseEnvelope(in.Envelope, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m := composeCases(t)[ResponseToFetchDelivery]
	m.ContentPackage = store.ContentPackageXML()
	m.NonIntermediaryCertificates = store.NonIntermediaryCertificates.Entries
	m.Signed = true
	env, err := ComposeEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	manager := loadKey(t, "osci_manager_signature_4096")
	var cids []string
	for _, p := range in.Parts {
		cids = append(cids, p.ContentID)
	}
	env, err = SignEnvelope(context.Background(), env, SignOptions{
		Signer: manager.Key, Method: xmldsig.AlgRSAPSSSHA256, CertificateID: CertificateID("intermed", "signature", manager.Cert),
		Attachments: cids, Open: func(_ context.Context, cid string) (io.ReadCloser, error) { return in.Part(cid).Open() },
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []OutPart
	for _, p := range in.Parts {
		r, err := p.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		parts = append(parts, OutPart{ContentID: p.ContentID, ContentType: p.ContentType, TransferEncoding: p.TransferEncoding, Size: p.Size, Body: r})
	}
	var msg bytes.Buffer
	if err := WriteMessage(&msg, NewBoundary(), true, env, parts); err != nil {
		t.Fatal(err)
	}
	renv, rmp := readEnvelope(t, msg.Bytes(), spool)
	if renv.Type != ResponseToFetchDelivery || len(renv.ContentPackage.Encrypted) != 1 {
		t.Fatalf("%s with %+v", renv.Type, renv.ContentPackage)
	}
	if chk, err := renv.VerifySignature(context.Background(), rmp); err != nil || !chk.Valid() || chk.Signer.Role != "SignatureCertificateIntermediary" {
		t.Fatalf("supplier signature: %v %v", err, chk.Err())
	}
	dc, err := DecryptContainer(context.Background(), renv.ContentPackage.Encrypted[0], rmp, decrypterOf(t, "bob_cipher_4096"), Limits{}, spool)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := VerifyContainer(context.Background(), dc.Doc, dc.Container, []*Certificates{renv.NonIntermediaryCertificates}, func(cid string) *Part { return dc.Attachments[cid] })
	if err != nil || len(checks) != 1 || !checks[0].Valid() {
		t.Fatalf("author's signature after passing on: %v %v", err, checks)
	}
}
