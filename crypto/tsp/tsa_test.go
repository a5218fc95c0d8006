package tsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
)

func TestClient(t *testing.T) {
	digest := sha256.Sum256([]byte("MessageReceived raw bytes"))
	tests := []struct {
		name      string
		modes     []string
		wantErr   string
		wantTSA   int // index of the TSA that answers
		wantCalls []int64
	}{
		{name: "first TSA answers", modes: []string{"", ""}, wantTSA: 0, wantCalls: []int64{1, 0}},
		{name: "fallback after HTTP errors", modes: []string{"http-500", ""}, wantTSA: 1, wantCalls: []int64{2, 1}},
		{name: "fallback after rejection", modes: []string{"reject", ""}, wantTSA: 1, wantCalls: []int64{2, 1}},
		{name: "wrong nonce", modes: []string{"wrong-nonce"}, wantErr: "nonce", wantCalls: []int64{2}},
		{name: "wrong imprint", modes: []string{"wrong-imprint"}, wantErr: "imprint", wantCalls: []int64{2}},
		{name: "oversize response", modes: []string{"oversize"}, wantErr: "exceeds", wantCalls: []int64{2}},
		{name: "TSA certificate without timeStamping EKU", modes: []string{"no-eku"}, wantErr: "tsa-extended-key-usage", wantCalls: []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tsas []*tsptest.TSA
			c := &Client{Attempts: 2, RetryDelay: time.Millisecond}
			for i, m := range tt.modes {
				a, url := tsptest.Start(t, m)
				tsas = append(tsas, a)
				c.TSAs = append(c.TSAs, TSA{Name: "tsa" + string(rune('0'+i)), URL: url})
			}
			st, err := c.Timestamp(context.Background(), digest[:])
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if st.TSA != c.TSAs[tt.wantTSA].Name || !st.Result.Valid {
					t.Errorf("answered by %s valid %v", st.TSA, st.Result.Valid)
				}
				// The stored token re-parses and verifies on its own.
				tok, err := ParseToken(st.Raw)
				if err != nil {
					t.Fatal(err)
				}
				if r := tok.Verify(VerifyOptions{Digest: digest[:]}); !r.Valid {
					t.Errorf("stored token: %v", failedChecks(r))
				}
			}
			for i, want := range tt.wantCalls {
				if got := tsas[i].Requests.Load(); got != want {
					t.Errorf("TSA %d got %d requests, want %d", i, got, want)
				}
			}
		})
	}
}

func TestClientContextCancelled(t *testing.T) {
	_, url := tsptest.Start(t, tsptest.HTTP500)
	c := &Client{TSAs: []TSA{{URL: url}}, Attempts: 5, RetryDelay: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	d := sha256.Sum256(nil)
	if _, err := c.Timestamp(ctx, d[:]); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	req := &Request{Hash: crypto.SHA256, HashedMessage: d[:], Nonce: big.NewInt(42), CertReq: true, Policy: asn1.ObjectIdentifier{1, 2, 3}}
	der, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nonce.Int64() != 42 || !got.CertReq || !got.Policy.Equal(req.Policy) || !bytes.Equal(got.HashedMessage, d[:]) {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := (&Request{Hash: crypto.SHA256, HashedMessage: d[:5]}).Marshal(); err == nil {
		t.Error("short digest accepted")
	}
}

func TestParseResponseRejection(t *testing.T) {
	resp, err := ParseResponse(tsptest.StatusOnly(StatusRejection, "no"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != StatusRejection || resp.Token != nil || resp.StatusStrings[0] != "no" {
		t.Errorf("%+v", resp)
	}
	if _, err := ParseResponse(tsptest.StatusOnly(StatusGranted, "")); err == nil {
		t.Error("granted without token accepted")
	}
}
