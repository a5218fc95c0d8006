package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// TestTimestampChecker holds TimestampApplied events that misstate their
// token, or follow no message, to the checker's verdicts; the tamper matrix
// runs the two forgeries a rewritten log can carry through log verify.
func TestTimestampChecker(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer, err := keys.Generate(filepath.Join(dir, "gateway.key"), filepath.Join(dir, "gateway.pub"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bs.PutBytes(ctx, []byte("From: a@example.org\r\nSubject: Antrag\r\n\r\nGuten Tag\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := (&gateway.Intake{Log: l}).Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, "1"),
		&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: "Antrag", Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.ReadStream(ctx, gateway.DefaultTenant, rec.Stream)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read the message back: %d, %v", len(evs), err)
	}
	cause := &evs[0]

	_, url := tsptest.Start(t, tsptest.Normal)
	tc := &tsp.Client{TSAs: []tsp.TSA{{Name: "test", URL: url}}}
	stamp := func(data string) (*tsp.Stamp, blob.Ref) {
		sum := sha256.Sum256([]byte(data))
		s, err := tc.Timestamp(ctx, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		ref, err := bs.PutBytes(ctx, s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		return s, ref
	}
	rawBytes, err := bs.ReadAll(ctx, raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	good, goodRef := stamp(string(rawBytes))
	other, otherRef := stamp("other data")
	junk, err := bs.PutBytes(ctx, []byte("not a token"))
	if err != nil {
		t.Fatal(err)
	}
	applied := func(s *tsp.Stamp, ref blob.Ref) gateway.TimestampApplied {
		return gateway.TimestampApplied{TSA: "test", Token: ref, GenTime: s.Token.Info.GenTime.UTC(),
			Imprint: raw.SHA256, Serial: s.Token.Info.SerialNumber.String()}
	}
	rawSum := sha256.Sum256(rawBytes)
	if raw.SHA256 != hex.EncodeToString(rawSum[:]) {
		t.Fatal("the blob store's reference is not the raw message's SHA-256")
	}

	cases := []struct {
		name    string
		ts      func() gateway.TimestampApplied
		causeID string // default: the MessageReceived
		want    string // part of the error; empty for none
	}{
		{name: "intact", ts: func() gateway.TimestampApplied { return applied(good, goodRef) }},
		{name: "imprint upper case", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.Imprint = strings.ToUpper(a.Imprint)
			return a
		}},
		{name: "token over other data", ts: func() gateway.TimestampApplied { return applied(other, otherRef) },
			want: "but the event records the imprint"},
		{name: "token and imprint of other data", ts: func() gateway.TimestampApplied {
			a := applied(other, otherRef)
			a.Imprint = hex.EncodeToString(other.Token.Info.HashedMessage)
			return a
		}, want: "the token timestamps other data"},
		{name: "genTime differs", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.GenTime = a.GenTime.Add(-time.Hour)
			return a
		}, want: "genTime"},
		{name: "serial differs", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.Serial = "4711"
			return a
		}, want: "serial"},
		{name: "malformed imprint", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.Imprint = "zz"
			return a
		}, want: "but the event records the imprint"},
		{name: "not a token", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.Token = junk
			return a
		}, want: "does not parse"},
		{name: "token blob missing", ts: func() gateway.TimestampApplied {
			a := applied(good, goodRef)
			a.Token = blob.Ref{SHA256: strings.Repeat("0", 64), Size: 10}
			return a
		}, want: "not found"},
		{name: "follows no event of the stream", ts: func() gateway.TimestampApplied { return applied(good, goodRef) },
			causeID: "elsewhere", want: "is not in its stream"},
	}
	c := &timestampChecker{store: bs, log: l, reg: gateway.NewRegistry()}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts()
			e, err := gateway.Follow("timestamp", cause, 0, &ts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.causeID != "" {
				e.CausationID = tc.causeID
			}
			err = c.check(ctx, &e, &ts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// A TimestampApplied that follows another TimestampApplied: the cause
	// must be the message itself.
	first := applied(good, goodRef)
	e, err := gateway.Follow("timestamp", cause, 0, &first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	stored, err := l.ReadStream(ctx, gateway.DefaultTenant, rec.Stream)
	if err != nil || len(stored) != 2 {
		t.Fatalf("read the stream back: %d, %v", len(stored), err)
	}
	second, err := gateway.Follow("timestamp", &stored[1], 0, &first)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.check(ctx, &second, &first); err == nil || !strings.Contains(err.Error(), "not a MessageReceived") {
		t.Fatalf("timestamp following a timestamp: %v, want an error naming the cause's type", err)
	}
}
