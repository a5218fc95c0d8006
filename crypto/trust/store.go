// Package trust builds and validates certificate paths at a given time,
// applies revocation evidence (CRLs and OCSP responses supplied with a
// signature, and what a configured RevocationSource fetches), and decides
// the eIDAS qualification of a signing certificate from its content and the
// trusted-list services that issued it (ETSI TS 119 615, result names as in
// DSS).
//
// Every decision is recorded as a Check, so that a report can show why and
// map the outcome to the ETSI EN 319 102-1 sub-indications.
package trust

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
)

// maxAnchorFile caps one anchor file (a PEM bundle of roots).
const maxAnchorFile = 4 << 20

// Anchor is a trust anchor and where it came from.
type Anchor struct {
	Cert   *cert.Certificate
	Source string // file path or "TL <territory> #<seq>"
	// Services are the trusted-list services whose digital identity is this
	// certificate (empty for anchors from files).
	Services []ServiceRef
}

// ServiceRef points at one trust service of a loaded trusted list.
type ServiceRef struct {
	List     *trustedlist.TrustedList
	Provider *trustedlist.Provider
	Service  *trustedlist.Service
}

// Store holds trust anchors. It is built once and then read concurrently.
type Store struct {
	anchors []*Anchor
	byFP    map[[32]byte]*Anchor
	// bySubjectKey indexes anchors by subject name and public key, so a
	// re-issued certificate with the same key and name is recognised.
	bySubjectKey map[string][]*Anchor
	// services identified by SKI or subject name only (no certificate).
	skiServices map[string][]ServiceRef
	// pool holds known intermediate CA certificates (not trusted).
	pool []*cert.Certificate
	// online is the default Input.Online (see WithRevocationSource).
	online RevocationSource
}

// AddIntermediates adds untrusted CA certificates that path building may
// use besides those supplied with a signature.
func (s *Store) AddIntermediates(certs ...*cert.Certificate) {
	s.pool = append(s.pool, certs...)
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{byFP: map[[32]byte]*Anchor{}, bySubjectKey: map[string][]*Anchor{}, skiServices: map[string][]ServiceRef{}}
}

func subjectKey(c *cert.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

// AddCertificate adds c as a trust anchor.
func (s *Store) AddCertificate(c *cert.Certificate, source string) *Anchor {
	fp := sha256.Sum256(c.Raw)
	if a, ok := s.byFP[fp]; ok {
		return a
	}
	a := &Anchor{Cert: c, Source: source}
	s.anchors = append(s.anchors, a)
	s.byFP[fp] = a
	k := subjectKey(c)
	s.bySubjectKey[k] = append(s.bySubjectKey[k], a)
	return a
}

// Anchors returns all anchors.
func (s *Store) Anchors() []*Anchor { return s.anchors }

// LoadAnchors adds the certificates of PEM or DER files, and of every
// *.pem, *.crt, *.cer and *.der file in directories (not recursive).
func (s *Store) LoadAnchors(ctx context.Context, paths ...string) error {
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("trust: anchors: %w", err)
		}
		if !fi.IsDir() {
			if err := s.loadFile(p); err != nil {
				return err
			}
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return fmt.Errorf("trust: anchors: %w", err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".pem", ".crt", ".cer", ".der":
			default:
				continue
			}
			if e.Type()&fs.ModeType != 0 {
				continue
			}
			if err := s.loadFile(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("trust: anchors: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(ioLimit(f, maxAnchorFile+1)); err != nil {
		return fmt.Errorf("trust: anchors %s: %w", path, err)
	}
	if buf.Len() > maxAnchorFile {
		return fmt.Errorf("trust: anchors %s: larger than %d bytes", path, maxAnchorFile)
	}
	certs, err := cert.ParseAll(buf.Bytes())
	if err != nil {
		return fmt.Errorf("trust: anchors %s: %w", path, err)
	}
	for _, c := range certs {
		s.AddCertificate(c, path)
	}
	return nil
}

// AddTrustedList makes the certificates of every service of tl (current
// and historical identities) trust anchors and links them to their
// services for the qualification decision. The list must come from
// trustedlist.Load (signature verified).
func (s *Store) AddTrustedList(tl *trustedlist.TrustedList) error {
	if tl.Signature == nil {
		return errors.New("trust: trusted list was not verified (use trustedlist.Load)")
	}
	source := fmt.Sprintf("TL %s #%d", tl.SchemeTerritory, tl.SequenceNumber)
	for pi := range tl.Providers {
		p := &tl.Providers[pi]
		for si := range p.Services {
			svc := &p.Services[si]
			ref := ServiceRef{List: tl, Provider: p, Service: svc}
			seen := map[*Anchor]bool{}
			for _, st := range append([]trustedlist.ServiceState{svc.Current}, svc.History...) {
				for _, c := range st.Identity.Certificates {
					a := s.AddCertificate(c, source)
					if !seen[a] {
						seen[a] = true
						a.Services = append(a.Services, ref)
					}
				}
				if len(st.Identity.Certificates) == 0 {
					for _, ski := range st.Identity.SKIs {
						s.skiServices[string(ski)] = append(s.skiServices[string(ski)], ref)
					}
				}
			}
		}
	}
	return nil
}

// anchorFor returns the anchor that c is, by identity or by same subject
// and key.
func (s *Store) anchorFor(c *cert.Certificate) *Anchor {
	if a, ok := s.byFP[sha256.Sum256(c.Raw)]; ok {
		return a
	}
	if as := s.bySubjectKey[subjectKey(c)]; len(as) > 0 {
		return as[0]
	}
	return nil
}

// issuersOf returns anchors whose subject matches c's issuer.
func (s *Store) issuersOf(c *cert.Certificate) []*cert.Certificate {
	var out []*cert.Certificate
	for _, a := range s.anchors {
		if cert.NameEqual(a.Cert.RawSubject, c.RawIssuer) {
			out = append(out, a.Cert)
		}
	}
	return out
}

// servicesFor returns the trusted-list services identifying any certificate
// of the chain above the leaf (by certificate, same subject and key, or SKI).
func (s *Store) servicesFor(chain []*cert.Certificate) []ServiceRef {
	var out []ServiceRef
	seen := map[*trustedlist.Service]bool{}
	add := func(refs []ServiceRef) {
		for _, r := range refs {
			if !seen[r.Service] {
				seen[r.Service] = true
				out = append(out, r)
			}
		}
	}
	for _, c := range chain[1:] {
		if a := s.anchorFor(c); a != nil {
			add(a.Services)
		}
		if len(c.SubjectKeyID) > 0 {
			add(s.skiServices[string(c.SubjectKeyID)])
		}
	}
	return out
}
