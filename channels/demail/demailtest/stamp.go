package demailtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"strings"

	// The hash functions a provider may name in the "a" tag.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// ProviderName is the FQDN the stand-in provider writes in
// X-de-mail-originator-provider and the "d" tag.
const ProviderName = "provider.de-mail.example"

// Stamp is a message as the provider protects it before delivery (clause
// 3.1.21): its header fields, body and the integrity parameters.
type Stamp struct {
	Fields [][2]string // header fields in order, without the integrity fields
	Body   string      // as it is written; hashed in "simple" canonical form
	Alg    string      // the "a" tag: "sha256" (hash only) or hash/signature
	Key    crypto.Signer
	Cert   []byte   // the signature certificate's DER; nil for a hash only
	H      []string // the "h" tag; nil is the TR's list for these fields
	Extra  string   // written into the tag list as is, e.g. "l=3;"
	Domain string   // the "d" tag; empty is ProviderName
}

// TRHeaderOrder is clause 3.1.21's list of the header fields the integrity
// protection covers, in its order; written out here independently of
// channels/demail on purpose.
var TRHeaderOrder = []string{"From", "Date", "Message-ID", "Subject", "Reply-To",
	"X-de-mail-confirmation-of-dispatch", "X-de-mail-confirmation-of-receipt", "X-de-mail-confirmation-of-retrieve",
	"X-de-mail-authoritative", "X-de-mail-private", "X-de-mail-sender", "X-de-mail-chosen-recipient",
	"X-de-mail-auth-mechanism", "X-de-mail-auth-level", "X-de-mail-originator-provider", "X-de-mail-message-type",
	"X-de-mail-version", "X-de-mail-private-id", "X-de-mail-message-id", "X-de-mail-account-holder"}

// Hashes are the hash names of the "a" tag.
var Hashes = map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}

// Message returns the stamped message: the fields, X-de-mail-integrity
// (a DKIM-like signature with simple/simple canonicalisation over the
// fields of H and the whole body) and, when signed, the
// X-de-mail-signature-certificate, then the body.
func (s Stamp) Message() ([]byte, error) {
	hname, sname, _ := strings.Cut(s.Alg, "/")
	hash, ok := Hashes[hname]
	if !ok {
		return nil, fmt.Errorf("demailtest: hash %q unknown", hname)
	}
	bh := hash.New()
	bh.Write(simpleBody(s.Body))
	var header, input strings.Builder
	for _, f := range s.Fields {
		header.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	hlist := s.H
	if hlist == nil {
		hlist = s.trList()
	}
	for _, n := range hlist {
		// Of a repeated field the topmost counts (the TR's rule, not RFC 6376's).
		for _, f := range s.Fields {
			if strings.EqualFold(f[0], n) {
				input.WriteString(f[0] + ": " + f[1] + "\r\n")
				break
			}
		}
	}
	domain := s.Domain
	if domain == "" {
		domain = ProviderName
	}
	tags := "v=1; a=" + s.Alg + "; c=simple/simple; d=" + domain + ";\r\n\t" + s.Extra
	if s.Cert != nil {
		tags += "q=x-header/x-de-mail-signature-certificate; "
	}
	tags += "h=" + strings.Join(hlist, ":") + ";\r\n\tbh=" + base64.StdEncoding.EncodeToString(bh.Sum(nil)) + "; b="
	integrity := "X-de-mail-integrity: " + tags
	input.WriteString(integrity)
	hh := hash.New()
	hh.Write([]byte(input.String()))
	b, err := s.sign(sname, hash, hh.Sum(nil))
	if err != nil {
		return nil, err
	}
	sig := base64.StdEncoding.EncodeToString(b)
	header.WriteString(integrity + sig[:10] + "\r\n\t" + sig[10:] + "\r\n")
	if s.Cert != nil {
		c := base64.StdEncoding.EncodeToString(s.Cert)
		header.WriteString("X-de-mail-signature-certificate: " + c[:60] + "\r\n " + c[60:] + "\r\n")
	}
	return []byte(header.String() + "\r\n" + s.Body), nil
}

// simpleBody is RFC 6376 section 3.4.3's "simple" body: the trailing
// empty lines removed and the body ended by one CRLF, an empty body one
// CRLF alone.
func simpleBody(body string) []byte {
	for strings.HasSuffix(body, "\r\n") {
		body = body[:len(body)-2]
	}
	return []byte(body + "\r\n")
}

// trList is every field of TRHeaderOrder, Reply-To even when absent (an
// absent field hashes as nothing, RFC 6376 section 5.4), the private id
// only when present, as the TR says.
func (s Stamp) trList() []string {
	var hlist []string
	for _, n := range TRHeaderOrder {
		present := n != "X-de-mail-private-id"
		for _, f := range s.Fields {
			present = present || strings.EqualFold(f[0], n)
		}
		if present {
			hlist = append(hlist, n)
		}
	}
	return hlist
}

// sign is the "b" value's bytes: the digest itself for a hash only,
// RSASSA-PSS with a salt of the hash's length, or the key's own scheme
// (PKCS #1 v1.5 for RSA, DER for ECDSA).
func (s Stamp) sign(scheme string, hash crypto.Hash, digest []byte) ([]byte, error) {
	if scheme == "" {
		return digest, nil
	}
	if s.Key == nil {
		return nil, fmt.Errorf("demailtest: %s needs a key", s.Alg)
	}
	var opts crypto.SignerOpts = hash
	if scheme == "rsassa-pss" {
		if _, ok := s.Key.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("demailtest: rsassa-pss needs an RSA key, not %T", s.Key)
		}
		opts = &rsa.PSSOptions{SaltLength: hash.Size(), Hash: hash}
	}
	b, err := s.Key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("demailtest: sign: %w", err)
	}
	return b, nil
}

// NormalFields is a normal De-Mail (message type "normal") from a citizen
// to the authority with every field table 1 requires; authoritative is the
// absenderbestätigt option, "yes" or "no".
func NormalFields(authoritative string) [][2]string {
	return [][2]string{
		{"From", "Erika Mustermann <erika.mustermann@mustermann.de-mail.example>"},
		{"To", "poststelle@kreis.de-mail.example"},
		{"Date", "Tue, 03 Mar 2026 10:15:00 +0100"},
		{"Message-ID", "<4711@provider.de-mail.example>"},
		{"Subject", "Antrag auf Baugenehmigung"},
		{"X-de-mail-confirmation-of-dispatch", "yes"},
		{"X-de-mail-confirmation-of-receipt", "yes"},
		{"X-de-mail-confirmation-of-retrieve", "no"},
		{"X-de-mail-authoritative", authoritative},
		{"X-de-mail-private", "no"},
		{"X-de-mail-sender", "erika.mustermann@mustermann.de-mail.example"},
		{"X-de-mail-chosen-recipient", "to=poststelle@kreis.de-mail.example"},
		{"X-de-mail-auth-mechanism", "eID"},
		{"X-de-mail-auth-level", "high"},
		{"X-de-mail-originator-provider", ProviderName},
		{"X-de-mail-message-type", "normal"},
		{"X-de-mail-version", "1.8"},
		{"X-de-mail-private-id", "Az-63-2026-117"},
		{"X-de-mail-message-id", "4711@provider.de-mail.example"},
		{"X-de-mail-account-holder", "Erika Mustermann"},
		{"X-de-mail-actual-recipient", "to=poststelle@kreis.de-mail.example"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
	}
}

// Set returns a copy of fields with the value of every field named name
// replaced, or with the field appended when it is absent.
func Set(fields [][2]string, name, value string) [][2]string {
	out := make([][2]string, 0, len(fields)+1)
	done := false
	for _, f := range fields {
		if strings.EqualFold(f[0], name) {
			f[1], done = value, true
		}
		out = append(out, f)
	}
	if !done {
		out = append(out, [2]string{name, value})
	}
	return out
}
