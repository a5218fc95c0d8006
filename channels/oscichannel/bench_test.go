package oscichannel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// BenchmarkPassiveReceive1MiB is the receive path of one delivery: a 1 MiB
// attachment signed by alice and encrypted for bob, forwarded as acceptDelivery by
// osci_manager, taken by the passive recipient: the raw body stored, decrypted,
// verified, the plaintext stored, MessageReceived appended durably to sqlitelog and
// the signed, encrypted answer written. Each iteration's message is distinct (a
// repeated one would be a duplicate, not an append); making it is not timed.
// test/integration/osci/bench measures the same with 64 concurrent dialogs.
func BenchmarkPassiveReceive1MiB(b *testing.B) {
	dir := b.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := authorityConfig(b, "http://127.0.0.1:1/")
	cfg.Passive = &PassiveConfig{Listen: "127.0.0.1:0"}
	p, err := NewPassive(cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.ln.Close()
	f := newForwarder(b)
	raw := make([]byte, 1<<20)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		_, _ = rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(raw)
		frame := stageFrame(b, f, raw, base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "bench-%06d", i)))
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(frame))
		w := httptest.NewRecorder()
		b.StartTimer()
		p.ServeHTTP(w, req)
		b.StopTimer()
		back, err := f.manager.ReadRequest(context.Background(), w.Body, osci.DirSpool{Dir: f.dir})
		if err != nil {
			b.Fatal(err)
		}
		if a := answerOf(b, back); !a.Accepted {
			b.Fatalf("delivery %d answered %s", i, a.Code)
		}
		b.StartTimer()
	}
}

// stageFrame is the acceptDelivery of raw, read whole, so that the sender's
// encryption is not part of the measured receive.
func stageFrame(b *testing.B, f *forwarder, raw []byte, id string) []byte {
	body, err := acceptDelivery(b, f.manager, raw, id, f.dir)
	if err != nil {
		b.Fatal(err)
	}
	frame, err := io.ReadAll(body)
	if err != nil {
		b.Fatal(err)
	}
	return frame
}
