package kafkalog

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/integrity"
)

// TestPublishedKeys checks that each notary announces its key once and that
// an auditor with only the brokers finds exactly the keys that signed.
func TestPublishedKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "pubkey-" + time.Now().Format("150405.000000")
	other := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 7))
	for _, k := range []ed25519.PrivateKey{testKey, testKey, other} {
		cfg := testConfig(topic)
		cfg.Signer = k
		l, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenReader(ctx, Config{Brokers: brokers(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.PublishedKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("published keys: got %d, want 2 (two distinct signers)", len(got))
	}
	for _, k := range []ed25519.PrivateKey{testKey, other} {
		id, _ := integrity.KeyID(k.Public())
		pub, ok := got[id]
		if !ok || !k.Public().(ed25519.PublicKey).Equal(pub) {
			t.Errorf("key %s: not published (got %v)", id, pub)
		}
	}
}
