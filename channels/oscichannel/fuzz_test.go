package oscichannel

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// recordFunc is a Recorder from a function.
type recordFunc func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error)

func (f recordFunc) Record(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
	return f(ctx, tenant, key, m)
}

// passiveHandler is a passive recipient whose receipts go to got, for calling
// ServeHTTP directly.
func passiveHandler(t testing.TB, got *[]*gateway.MessageReceived) (*Passive, *blob.Store) {
	t.Helper()
	blobs, err := blob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := authorityConfig(t, "http://127.0.0.1:1/")
	cfg.Passive = &PassiveConfig{Listen: "127.0.0.1:0"}
	cfg.MaxMessageBytes = 1 << 20
	rec := recordFunc(func(_ context.Context, _, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
		if !strings.HasPrefix(key, "egvp:") {
			t.Errorf("key %q not scoped to egvp", key)
		}
		*got = append(*got, m)
		return gateway.Receipt{}, nil
	})
	p, err := NewPassive(cfg, gateway.IntakeDeps{Intake: rec, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ln.Close() })
	return p, blobs
}

// TestPassiveKeepsWhatItCannotOpen: a body that is no OSCI message, or one for another
// recipient, is stored and recorded with its problem, and answered with a fault.
func TestPassiveKeepsWhatItCannotOpen(t *testing.T) {
	var got []*gateway.MessageReceived
	p, blobs := passiveHandler(t, &got)
	dave := pair(t, "dave_signature_4096")
	other, err := acceptDelivery(t, osci.Supplier{Signer: dave.Key, SignatureCertificate: dave.Cert, CipherCertificate: pair(t, "dave_cipher_4096").Cert},
		[]byte("Subject: x\r\n\r\ny\r\n"), "eA==", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherBytes, err := io.ReadAll(other)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"garbage":           []byte("\x00\x01 not OSCI at all"),
		"mime only":         []byte("MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=b\r\n\r\n--b\r\n\r\n<x/>\r\n--b--\r\n"),
		"signed by another": otherBytes,
	}
	for name, body := range cases {
		got = got[:0]
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if len(got) != 1 || len(got[0].Problems) == 0 {
			t.Fatalf("%s: %d receipts, problems %v", name, len(got), got)
		}
		t.Logf("%s: %q", name, got[0].Problems)
		b, err := blobs.ReadAll(context.Background(), got[0].Raw, 1<<20)
		if err != nil || !bytes.Equal(b, body) {
			t.Errorf("%s: stored bytes differ (%v)", name, err)
		}
		if !bytes.Contains(w.Body.Bytes(), []byte("soap:Fault")) && name != "signed by another" {
			t.Errorf("%s: answer %.200q is no fault", name, w.Body.String())
		}
	}
}

// FuzzPassiveBody: whatever the intermediary's side posts is stored and either
// recorded or refused with a fault; nothing panics.
func FuzzPassiveBody(f *testing.F) {
	f.Add([]byte("garbage"))
	f.Add([]byte("MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=b\r\n\r\n--b\r\nContent-ID: <osci@message>\r\n\r\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body/></soap:Envelope>\r\n--b--\r\n"))
	var got []*gateway.MessageReceived
	p, _ := passiveHandler(f, &got)
	f.Fuzz(func(t *testing.T, body []byte) {
		got = got[:0]
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if len(got) > 1 {
			t.Fatalf("%d receipts for one request", len(got))
		}
		if w.Body.Len() == 0 {
			t.Fatal("no answer")
		}
	})
}
