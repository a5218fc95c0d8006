package xmlenc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Identify says how an EncryptedKey names the recipient's certificate.
type Identify int

// Ways to name the recipient certificate in ds:KeyInfo.
const (
	// IdentifyCertificate writes X509Data/X509Certificate, as the OSCI
	// library does.
	IdentifyCertificate Identify = iota
	IdentifyIssuerSerial
	IdentifySKI
)

// EncryptOptions describe the EncryptedData Encrypt and EncryptStream make.
// The defaults are those of the OSCI library 2.4.1: AES-256-GCM with a 12
// byte IV, RSA-OAEP (xmlenc11#rsa-oaep) with SHA-256 and MGF1-SHA-256.
type EncryptOptions struct {
	// Algorithm is the data encryption; only AES-GCM is produced.
	Algorithm string
	// Key is the data key; default a fresh random one (Encrypted.Key
	// returns it, e.g. for the attachments of the same message).
	Key []byte
	// Recipients get one EncryptedKey each, inside ds:KeyInfo. None is
	// allowed when the reader has Key by other means.
	Recipients []*x509.Certificate
	// KeyTransport is RSAOAEP (default) or RSAOAEPMGF1P.
	KeyTransport string
	// OAEPDigest and MGF are the OAEP hashes; default SHA-256 both.
	OAEPDigest, MGF crypto.Hash
	Identify        Identify
	// ID, Type and MimeType are the EncryptedData's attributes.
	ID, Type, MimeType string
	// IVLength is 12 (default) or 16 (OSCI readers of library 1.9 to
	// 2.0.0).
	IVLength int
	// OmitIVLength leaves osci128:IvLength out of EncryptionMethod. It is
	// written by default because the OSCI library reads a GCM
	// EncryptedData without it as having a 16 byte IV (and writes it for
	// every other length); other readers ignore the foreign element.
	OmitIVLength bool
	// Deprecated: IvLength is written unless OmitIVLength is set.
	WriteIVLength bool
	// Rand is the randomness for keys, IVs and OAEP; default crypto/rand.
	Rand io.Reader
}

// Encrypted is what Encrypt made.
type Encrypted struct {
	// XML is the xenc:EncryptedData element with its namespaces declared,
	// to be inserted into a document.
	XML []byte
	// Key is the data key.
	Key []byte
}

// Encrypt encrypts plaintext (an XML element or content, or any octets)
// into an EncryptedData with an inline CipherValue.
func Encrypt(ctx context.Context, plaintext []byte, opts EncryptOptions) (*Encrypted, error) {
	var ct bytes.Buffer
	e, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := e.seal(bytes.NewReader(plaintext), &ct); err != nil {
		return nil, err
	}
	return &Encrypted{XML: e.xml(ct.Bytes(), ""), Key: e.key}, nil
}

// EncryptStream encrypts r into w (IV || ciphertext || tag, the octets of
// the MIME part uri names) with bounded memory and returns the
// EncryptedData whose CipherReference points at uri.
func EncryptStream(ctx context.Context, r io.Reader, w io.Writer, uri string, opts EncryptOptions) (*Encrypted, error) {
	if uri == "" {
		return nil, errors.New("xmlenc: encrypt: CipherReference needs a URI")
	}
	e, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := e.seal(r, w); err != nil {
		return nil, err
	}
	return &Encrypted{XML: e.xml(nil, uri), Key: e.key}, nil
}

type encryption struct {
	opts EncryptOptions
	alg  dataAlg
	key  []byte
	iv   []byte
	keys [][]byte // EncryptedKey cipher values, per recipient
}

func prepare(ctx context.Context, opts EncryptOptions) (*encryption, error) {
	if opts.Algorithm == "" {
		opts.Algorithm = AES256GCM
	}
	if opts.KeyTransport == "" {
		opts.KeyTransport = RSAOAEP
	}
	if opts.KeyTransport != RSAOAEP && opts.KeyTransport != RSAOAEPMGF1P {
		return nil, fmt.Errorf("%w: encrypt: key transport %q", ErrUnsupported, opts.KeyTransport)
	}
	if opts.OAEPDigest == 0 {
		opts.OAEPDigest = crypto.SHA256
	}
	if opts.MGF == 0 {
		opts.MGF = crypto.SHA256
	}
	if opts.IVLength == 0 {
		opts.IVLength = 12
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	alg, err := lookupData(opts.Algorithm)
	if err != nil || !alg.gcm {
		return nil, fmt.Errorf("%w: encrypt: data algorithm %q (only AES-GCM is produced)", ErrUnsupported, opts.Algorithm)
	}
	if opts.IVLength != 12 && opts.IVLength != 16 {
		return nil, fmt.Errorf("xmlenc: encrypt: GCM IV length %d, want 12 or 16", opts.IVLength)
	}
	e := &encryption{opts: opts, alg: alg, key: opts.Key}
	if e.key == nil {
		e.key = make([]byte, alg.keyLen)
		if _, err := io.ReadFull(opts.Rand, e.key); err != nil {
			return nil, fmt.Errorf("xmlenc: encrypt: making a key: %w", err)
		}
	}
	if len(e.key) != alg.keyLen {
		return nil, fmt.Errorf("xmlenc: encrypt: key of %d bytes for %s", len(e.key), alg.uri)
	}
	e.iv = make([]byte, opts.IVLength)
	if _, err := io.ReadFull(opts.Rand, e.iv); err != nil {
		return nil, fmt.Errorf("xmlenc: encrypt: making an IV: %w", err)
	}
	for _, c := range opts.Recipients {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ct, err := wrap(opts.Rand, e.key, c, opts.KeyTransport, opts.OAEPDigest, opts.MGF)
		if err != nil {
			return nil, err
		}
		e.keys = append(e.keys, ct)
	}
	return e, nil
}

func (e *encryption) seal(r io.Reader, w io.Writer) error {
	block, err := aes.NewCipher(e.key)
	if err != nil {
		return fmt.Errorf("xmlenc: encrypt: %w", err)
	}
	s, err := newGCMStream(block, e.iv, false)
	if err != nil {
		return err
	}
	if _, err := w.Write(e.iv); err != nil {
		return fmt.Errorf("xmlenc: encrypt: writing: %w", err)
	}
	buf := make([]byte, streamChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := s.xorKeyStream(buf[:n], buf[:n]); err != nil {
				return fmt.Errorf("xmlenc: encrypt: %w", err)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("xmlenc: encrypt: writing: %w", err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("xmlenc: encrypt: reading the plaintext: %w", rerr)
		}
	}
	tag := s.tag()
	if _, err := w.Write(tag[:]); err != nil {
		return fmt.Errorf("xmlenc: encrypt: writing: %w", err)
	}
	return nil
}

// xml writes the EncryptedData; exactly one of value and uri is set.
func (e *encryption) xml(value []byte, uri string) []byte {
	var b bytes.Buffer
	o := e.opts
	b.WriteString(`<xenc:EncryptedData xmlns:xenc="` + NamespaceXEnc + `"`)
	attr(&b, "Id", o.ID)
	attr(&b, "Type", o.Type)
	attr(&b, "MimeType", o.MimeType)
	b.WriteString(`><xenc:EncryptionMethod Algorithm="` + e.alg.uri + `"`)
	if !o.OmitIVLength {
		b.WriteString(`><osci128:IvLength xmlns:osci128="` + NamespaceOSCI128 + `" Value="` + strconv.Itoa(o.IVLength) + `"/></xenc:EncryptionMethod>`)
	} else {
		b.WriteString(`/>`)
	}
	if len(e.keys) > 0 {
		b.WriteString(`<ds:KeyInfo xmlns:ds="` + NamespaceDSig + `">`)
		for i, c := range o.Recipients {
			e.encryptedKey(&b, c, e.keys[i])
		}
		b.WriteString(`</ds:KeyInfo>`)
	}
	b.WriteString(`<xenc:CipherData>`)
	if uri != "" {
		b.WriteString(`<xenc:CipherReference`)
		attr(&b, "URI", uri)
		b.WriteString(`/>`)
	} else {
		b.WriteString(`<xenc:CipherValue>` + base64.StdEncoding.EncodeToString(value) + `</xenc:CipherValue>`)
	}
	b.WriteString(`</xenc:CipherData></xenc:EncryptedData>`)
	return b.Bytes()
}

func (e *encryption) encryptedKey(b *bytes.Buffer, c *x509.Certificate, value []byte) {
	o := e.opts
	b.WriteString(`<xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="` + o.KeyTransport + `">`)
	b.WriteString(`<ds:DigestMethod Algorithm="` + hashDigestURI(o.OAEPDigest) + `"/>`)
	if o.KeyTransport == RSAOAEP {
		b.WriteString(`<xenc11:MGF xmlns:xenc11="` + NamespaceXEnc11 + `" Algorithm="` + hashMGFURI(o.MGF) + `"/>`)
	}
	b.WriteString(`</xenc:EncryptionMethod><ds:KeyInfo><ds:X509Data>`)
	switch o.Identify {
	case IdentifyIssuerSerial:
		b.WriteString(`<ds:X509IssuerSerial><ds:X509IssuerName>`)
		xml.EscapeText(b, []byte(c.Issuer.String()))
		b.WriteString(`</ds:X509IssuerName><ds:X509SerialNumber>` + c.SerialNumber.String() + `</ds:X509SerialNumber></ds:X509IssuerSerial>`)
	case IdentifySKI:
		ski := c.SubjectKeyId
		if len(ski) == 0 {
			ski = publicKeySKI(c.RawSubjectPublicKeyInfo)
		}
		b.WriteString(`<ds:X509SKI>` + base64.StdEncoding.EncodeToString(ski) + `</ds:X509SKI>`)
	default:
		b.WriteString(`<ds:X509Certificate>` + base64.StdEncoding.EncodeToString(c.Raw) + `</ds:X509Certificate>`)
	}
	b.WriteString(`</ds:X509Data></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>` + base64.StdEncoding.EncodeToString(value) + `</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>`)
}

func attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + `="`)
	xml.EscapeText(b, []byte(value))
	b.WriteByte('"')
}
