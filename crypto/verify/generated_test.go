package verify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

func anchors(t testing.TB, p *verifytest.PKI) *trust.Store {
	t.Helper()
	s, err := verify.LoadTrust(context.Background(), verify.TrustConfig{Paths: []string{p.CACert}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGeneratedSignatures(t *testing.T) {
	content := []byte("Antrag auf Erteilung einer Baugenehmigung\n")
	for _, kt := range []string{"rsa", "p256"} {
		t.Run(kt, func(t *testing.T) {
			p := verifytest.New(t, kt)
			store := anchors(t, p)
			detached := p.Sign(t, content, false)
			attached := p.Sign(t, content, true)
			tampered := append(bytes.Clone(content), '!')
			smime := p.SignSMIME(t, []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nAntrag\r\nZeile 2"))
			lfOnly := bytes.ReplaceAll(smime, []byte("\r\n"), []byte("\n"))
			entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nAntrag\r\nZeile 2\r\n")
			entitySig := p.Sign(t, entity, false)
			entityLF := bytes.ReplaceAll(entity, []byte("\r\n"), []byte("\n"))
			cases := []struct {
				name     string
				data     []byte
				opts     verify.Options
				ind      report.Indication
				sub      report.SubIndication
				warnings bool
			}{
				{"detached", detached, verify.Options{Detached: content, Trust: store}, report.TotalPassed, "", false},
				{"attached", attached, verify.Options{Trust: store}, report.TotalPassed, "", false},
				{"tampered", detached, verify.Options{Detached: tampered, Trust: store}, report.TotalFailed, report.HashFailure, false},
				{"no content", detached, verify.Options{Trust: store}, report.Indeterminate, report.SignedDataNotFound, false},
				{"no anchor", attached, verify.Options{}, report.Indeterminate, report.NoCertificateChainFound, false},
				{"expired", attached, verify.Options{Trust: store, Time: time.Now().AddDate(0, 2, 0)}, report.Indeterminate, report.OutOfBoundsNoPOE, false},
				{"smime", smime, verify.Options{Trust: store}, report.TotalPassed, "", false},
				{"smime LF", lfOnly, verify.Options{Trust: store}, report.TotalPassed, "", true},
				{"streamed", detached, verify.Options{DetachedReader: opener(content), Trust: store}, report.TotalPassed, "", false},
				{"streamed tampered", detached, verify.Options{DetachedReader: opener(tampered), Trust: store}, report.TotalFailed, report.HashFailure, false},
				{"streamed entity", entitySig, verify.Options{DetachedReader: opener(entity), MIMEContent: true, Trust: store}, report.TotalPassed, "", false},
				{"streamed entity LF", entitySig, verify.Options{DetachedReader: opener(entityLF), MIMEContent: true, Trust: store}, report.TotalPassed, "", true},
				{"streamed LF not MIME", entitySig, verify.Options{DetachedReader: opener(entityLF), Trust: store}, report.TotalFailed, report.HashFailure, false},
			}
			for _, c := range cases {
				rep, err := verify.Verify(context.Background(), c.data, c.opts)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if len(rep.Signatures) != 1 {
					t.Fatalf("%s: %d signatures", c.name, len(rep.Signatures))
				}
				s := rep.Signatures[0]
				if s.Indication != c.ind || s.SubIndication != c.sub {
					t.Errorf("%s: %s/%s, want %s/%s; %+v", c.name, s.Indication, s.SubIndication, c.ind, c.sub, s.Checks)
				}
				if err := rep.Validate(); err != nil {
					t.Errorf("%s: invalid report: %v", c.name, err)
				}
				// Without a trusted list nothing is qualified, as in DSS.
				if s.Qualification != report.QualificationNotApplicable || rep.WrittenFormSatisfied {
					t.Errorf("%s: qualification %s, written form %v", c.name, s.Qualification, rep.WrittenFormSatisfied)
				}
				if s.Signer == nil || s.SigningTime == nil {
					t.Errorf("%s: signer %v signing time %v", c.name, s.Signer, s.SigningTime)
				}
				warned := false
				for _, ch := range s.Checks {
					warned = warned || ch.ID == "cms.mime-canonicalization"
				}
				if warned != c.warnings {
					t.Errorf("%s: canonicalization note %v", c.name, warned)
				}
			}
		})
	}
}

// opener opens b as DetachedReader does.
func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// TestStreamedContentUnreadable: a content stream that fails is no verdict
// on the signature but an error the caller can retry on.
func TestStreamedContentUnreadable(t *testing.T) {
	p := verifytest.New(t, "p256")
	content := bytes.Repeat([]byte("Bauantrag "), 10000)
	sig := p.Sign(t, content, false)
	broken := errors.New("disk on fire")
	for name, open := range map[string]func() (io.ReadCloser, error){
		"open fails": func() (io.ReadCloser, error) { return nil, broken },
		"read fails": func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(content[:5000]), iotest.ErrReader(broken))), nil
		},
	} {
		rep, err := verify.Verify(context.Background(), sig, verify.Options{DetachedReader: open, Trust: anchors(t, p)})
		if !errors.Is(err, verify.ErrContentRead) || !errors.Is(err, broken) || rep != nil {
			t.Errorf("%s: report %v, err %v; want ErrContentRead wrapping the cause", name, rep != nil, err)
		}
	}
}

func TestRefusedInput(t *testing.T) {
	for name, data := range map[string][]byte{
		"garbage":  []byte("\x00\x01 not a signature"),
		"der junk": {0x30, 0x82, 0xff, 0xff, 0x01},
		"pdf":      []byte("%PDF-1.7\n..."),
		"xml":      []byte(`<?xml version="1.0"?><a/>`),
		"mail":     []byte("From: a@example.org\r\nContent-Type: text/plain\r\n\r\nhello\r\n"),
		"empty":    nil,
	} {
		rep, err := verify.Verify(context.Background(), data, verify.Options{})
		if err == nil || rep != nil {
			t.Errorf("%s: no error", name)
		}
		if !errors.Is(err, verify.ErrMalformed) && !errors.Is(err, verify.ErrUnsupported) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
