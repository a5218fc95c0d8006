package xmlenc

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

const (
	maxCertificates = 8
	maxTransforms   = 1
	maxKeyCipher    = 2048 // an RSA-16384 key transport value
)

// EncryptionMethod is a parsed xenc:EncryptionMethod.
type EncryptionMethod struct {
	Algorithm string
	// KeySize is xenc:KeySize in bits, 0 when absent.
	KeySize int
	// OAEPParams is the OAEP label (xenc:OAEPparams).
	OAEPParams []byte
	// Digest and MGF are the OAEP ds:DigestMethod and xenc11:MGF URIs.
	Digest, MGF string
	// IVLength is osci128:IvLength (0 when absent).
	IVLength int
}

// KeyIdentity is what an EncryptedKey's ds:KeyInfo says about the
// recipient's certificate.
type KeyIdentity struct {
	KeyName string
	// Certificates are X509Certificate values (DER).
	Certificates [][]byte
	// IssuerName and Serial are X509IssuerSerial; Serial nil when absent.
	IssuerName string
	Serial     *big.Int
	// SKI is X509SKI.
	SKI []byte
}

// Empty reports whether the KeyInfo identifies no certificate.
func (k KeyIdentity) Empty() bool {
	return len(k.Certificates) == 0 && k.Serial == nil && len(k.SKI) == 0
}

// EncryptedKey is a parsed xenc:EncryptedKey.
type EncryptedKey struct {
	Element     *xmldsig.Element
	ID          string
	Recipient   string
	Method      EncryptionMethod
	Identity    KeyIdentity
	CipherValue []byte
	// CarriedKeyName is xenc:CarriedKeyName.
	CarriedKeyName string
}

// EncryptedData is a parsed xenc:EncryptedData.
type EncryptedData struct {
	Element            *xmldsig.Element
	ID, Type, MimeType string
	Encoding           string
	Method             EncryptionMethod
	// KeyName is a ds:KeyName of the KeyInfo; RetrievalURIs the URIs of
	// ds:RetrievalMethod elements pointing at EncryptedKeys.
	KeyName       string
	RetrievalURIs []string
	// EncryptedKeys are those inside the KeyInfo.
	EncryptedKeys []*EncryptedKey
	// CipherValue is the inline ciphertext; CipherReference the URI of
	// one held elsewhere, with Base64 set when a base64 transform
	// decodes it first.
	CipherValue     []byte
	CipherReference string
	Base64          bool
}

// ParseEncryptedData reads an xenc:EncryptedData strictly: the content
// model of XML Encryption (EncryptionMethod, ds:KeyInfo?, CipherData,
// EncryptionProperties?), no unknown elements where the schema has none,
// and the sizes of p. The algorithms are checked only when decrypting.
func ParseEncryptedData(e *xmldsig.Element, p Policy) (*EncryptedData, error) {
	p = p.withDefaults()
	if !e.Is(NamespaceXEnc, "EncryptedData") {
		return nil, fmt.Errorf("%w: <%s> is not xenc:EncryptedData", ErrFormat, e.Local)
	}
	ed := &EncryptedData{Element: e}
	ed.ID, _ = e.Attr("Id")
	ed.Type, _ = e.Attr("Type")
	ed.MimeType, _ = e.Attr("MimeType")
	ed.Encoding, _ = e.Attr("Encoding")
	els, err := elementChildren(e)
	if err != nil {
		return nil, err
	}
	i := 0
	if i < len(els) && els[i].Is(NamespaceXEnc, "EncryptionMethod") {
		if ed.Method, err = parseMethod(els[i]); err != nil {
			return nil, err
		}
		i++
	} else {
		return nil, fmt.Errorf("%w: EncryptedData without EncryptionMethod", ErrFormat)
	}
	if i < len(els) && els[i].Is(NamespaceDSig, "KeyInfo") {
		if err := ed.parseKeyInfo(els[i], p); err != nil {
			return nil, err
		}
		i++
	}
	if i >= len(els) || !els[i].Is(NamespaceXEnc, "CipherData") {
		return nil, fmt.Errorf("%w: EncryptedData without CipherData", ErrFormat)
	}
	if err := ed.parseCipherData(els[i], p); err != nil {
		return nil, err
	}
	i++
	if i < len(els) && els[i].Is(NamespaceXEnc, "EncryptionProperties") {
		i++
	}
	if i != len(els) {
		return nil, fmt.Errorf("%w: unexpected <%s> in EncryptedData", ErrFormat, els[i].Local)
	}
	return ed, nil
}

// elementChildren returns the child elements, refusing text other than
// whitespace between them.
func elementChildren(e *xmldsig.Element) ([]*xmldsig.Element, error) {
	for _, n := range e.Children {
		if n.Kind == xmldsig.KindText && strings.Trim(n.Text, " \t\r\n") != "" {
			return nil, fmt.Errorf("%w: text inside <%s>", ErrFormat, e.Local)
		}
	}
	return e.Elements(), nil
}

func parseMethod(e *xmldsig.Element) (EncryptionMethod, error) {
	var m EncryptionMethod
	var ok bool
	if m.Algorithm, ok = e.Attr("Algorithm"); !ok || m.Algorithm == "" {
		return m, fmt.Errorf("%w: EncryptionMethod without Algorithm", ErrFormat)
	}
	els, err := elementChildren(e)
	if err != nil {
		return m, err
	}
	for _, c := range els {
		switch {
		case c.Is(NamespaceXEnc, "KeySize") && m.KeySize == 0:
			n, err := strconv.Atoi(strings.TrimSpace(c.Text()))
			if err != nil || n <= 0 || n > 1<<16 {
				return m, fmt.Errorf("%w: KeySize %q", ErrFormat, c.Text())
			}
			m.KeySize = n
		case c.Is(NamespaceXEnc, "OAEPparams") && m.OAEPParams == nil:
			if m.OAEPParams, err = decodeB64(c.Text(), 1024); err != nil {
				return m, fmt.Errorf("%w: OAEPparams: %v", ErrFormat, err)
			}
		case c.Is(NamespaceDSig, "DigestMethod") && m.Digest == "":
			m.Digest, _ = c.Attr("Algorithm")
		case c.Is(NamespaceXEnc11, "MGF") && m.MGF == "":
			m.MGF, _ = c.Attr("Algorithm")
		case c.Is(NamespaceOSCI128, "IvLength") && m.IVLength == 0:
			v, _ := c.Attr("Value")
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || (n != 12 && n != 16) {
				return m, fmt.Errorf("%w: IvLength %q", ErrFormat, v)
			}
			m.IVLength = n
		default:
			return m, fmt.Errorf("%w: unexpected <%s> in EncryptionMethod", ErrFormat, c.Local)
		}
	}
	return m, nil
}

func (ed *EncryptedData) parseKeyInfo(ki *xmldsig.Element, p Policy) error {
	els, err := elementChildren(ki)
	if err != nil {
		return err
	}
	for _, c := range els {
		switch {
		case c.Is(NamespaceXEnc, "EncryptedKey"):
			if len(ed.EncryptedKeys) >= p.MaxEncryptedKeys {
				return fmt.Errorf("%w: more than %d EncryptedKeys", ErrTooLarge, p.MaxEncryptedKeys)
			}
			ek, err := ParseEncryptedKey(c, p)
			if err != nil {
				return err
			}
			ed.EncryptedKeys = append(ed.EncryptedKeys, ek)
		case c.Is(NamespaceDSig, "KeyName"):
			ed.KeyName = strings.TrimSpace(c.Text())
		case c.Is(NamespaceDSig, "RetrievalMethod"):
			if len(ed.RetrievalURIs) >= p.MaxEncryptedKeys {
				return fmt.Errorf("%w: more than %d RetrievalMethods", ErrTooLarge, p.MaxEncryptedKeys)
			}
			uri, _ := c.Attr("URI")
			typ, _ := c.Attr("Type")
			if typ != "" && typ != TypeEncrypted {
				return fmt.Errorf("%w: RetrievalMethod of type %q", ErrUnsupported, typ)
			}
			ed.RetrievalURIs = append(ed.RetrievalURIs, uri)
		default:
			// Other KeyInfo content (X509Data naming the recipient
			// of an enclosing key) says nothing we use.
		}
	}
	return nil
}

func (ed *EncryptedData) parseCipherData(cd *xmldsig.Element, p Policy) error {
	value, ref, b64, err := parseCipherData(cd, p.MaxCipherValue)
	if err != nil {
		return err
	}
	ed.CipherValue, ed.CipherReference, ed.Base64 = value, ref, b64
	return nil
}

// parseCipherData reads CipherData: exactly one CipherValue or
// CipherReference (whose only transform may be base64).
func parseCipherData(cd *xmldsig.Element, maxValue int) (value []byte, ref string, b64 bool, err error) {
	els, err := elementChildren(cd)
	if err != nil {
		return nil, "", false, err
	}
	if len(els) != 1 {
		return nil, "", false, fmt.Errorf("%w: CipherData must hold one CipherValue or CipherReference", ErrFormat)
	}
	c := els[0]
	switch {
	case c.Is(NamespaceXEnc, "CipherValue"):
		if len(c.Elements()) > 0 {
			return nil, "", false, fmt.Errorf("%w: elements inside CipherValue", ErrFormat)
		}
		v, err := decodeB64(c.Text(), maxValue)
		if err != nil {
			return nil, "", false, fmt.Errorf("CipherValue: %w", err)
		}
		return v, "", false, nil
	case c.Is(NamespaceXEnc, "CipherReference"):
		uri, ok := c.Attr("URI")
		if !ok || uri == "" {
			return nil, "", false, fmt.Errorf("%w: CipherReference without URI", ErrFormat)
		}
		b64, err := parseCipherTransforms(c)
		return nil, uri, b64, err
	}
	return nil, "", false, fmt.Errorf("%w: unexpected <%s> in CipherData", ErrFormat, c.Local)
}

func parseCipherTransforms(c *xmldsig.Element) (bool, error) {
	els, err := elementChildren(c)
	if err != nil {
		return false, err
	}
	if len(els) == 0 {
		return false, nil
	}
	if len(els) != 1 || !els[0].Is(NamespaceXEnc, "Transforms") {
		return false, fmt.Errorf("%w: CipherReference may hold only xenc:Transforms", ErrFormat)
	}
	ts := els[0].Elements()
	if len(ts) > maxTransforms {
		return false, fmt.Errorf("%w: %d CipherReference transforms", ErrUnsupported, len(ts))
	}
	for _, t := range ts {
		alg, _ := t.Attr("Algorithm")
		if !t.Is(NamespaceDSig, "Transform") || alg != TransformB64 || len(t.Elements()) > 0 {
			return false, fmt.Errorf("%w: CipherReference transform %q", ErrUnsupported, alg)
		}
	}
	return len(ts) == 1, nil
}

// ParseEncryptedKey reads an xenc:EncryptedKey: EncryptionMethod,
// ds:KeyInfo?, CipherData with an inline value, EncryptionProperties?,
// ReferenceList?, CarriedKeyName?.
func ParseEncryptedKey(e *xmldsig.Element, p Policy) (*EncryptedKey, error) {
	if !e.Is(NamespaceXEnc, "EncryptedKey") {
		return nil, fmt.Errorf("%w: <%s> is not xenc:EncryptedKey", ErrFormat, e.Local)
	}
	ek := &EncryptedKey{Element: e}
	ek.ID, _ = e.Attr("Id")
	ek.Recipient, _ = e.Attr("Recipient")
	els, err := elementChildren(e)
	if err != nil {
		return nil, err
	}
	i := 0
	if i >= len(els) || !els[i].Is(NamespaceXEnc, "EncryptionMethod") {
		return nil, fmt.Errorf("%w: EncryptedKey without EncryptionMethod", ErrFormat)
	}
	if ek.Method, err = parseMethod(els[i]); err != nil {
		return nil, err
	}
	i++
	if i < len(els) && els[i].Is(NamespaceDSig, "KeyInfo") {
		if ek.Identity, err = parseIdentity(els[i]); err != nil {
			return nil, err
		}
		i++
	}
	if i >= len(els) || !els[i].Is(NamespaceXEnc, "CipherData") {
		return nil, fmt.Errorf("%w: EncryptedKey without CipherData", ErrFormat)
	}
	var ref string
	if ek.CipherValue, ref, _, err = parseCipherData(els[i], maxKeyCipher); err != nil {
		return nil, fmt.Errorf("EncryptedKey: %w", err)
	}
	if ref != "" {
		return nil, fmt.Errorf("%w: EncryptedKey with a CipherReference", ErrUnsupported)
	}
	i++
	for _, name := range []string{"EncryptionProperties", "ReferenceList", "CarriedKeyName"} {
		if i < len(els) && els[i].Is(NamespaceXEnc, name) {
			if name == "CarriedKeyName" {
				ek.CarriedKeyName = strings.TrimSpace(els[i].Text())
			}
			i++
		}
	}
	if i != len(els) {
		return nil, fmt.Errorf("%w: unexpected <%s> in EncryptedKey", ErrFormat, els[i].Local)
	}
	return ek, nil
}

func parseIdentity(ki *xmldsig.Element) (KeyIdentity, error) {
	var id KeyIdentity
	for _, c := range ki.Elements() {
		switch {
		case c.Is(NamespaceDSig, "KeyName"):
			id.KeyName = strings.TrimSpace(c.Text())
		case c.Is(NamespaceDSig, "X509Data"):
			if err := id.parseX509Data(c); err != nil {
				return id, err
			}
		}
	}
	return id, nil
}

func (id *KeyIdentity) parseX509Data(xd *xmldsig.Element) error {
	for _, c := range xd.Elements() {
		switch {
		case c.Is(NamespaceDSig, "X509Certificate"):
			if len(id.Certificates) >= maxCertificates {
				return fmt.Errorf("%w: more than %d certificates in an EncryptedKey", ErrTooLarge, maxCertificates)
			}
			der, err := decodeB64(c.Text(), 64<<10)
			if err != nil {
				return fmt.Errorf("%w: X509Certificate: %v", ErrFormat, err)
			}
			id.Certificates = append(id.Certificates, der)
		case c.Is(NamespaceDSig, "X509IssuerSerial"):
			id.IssuerName = strings.TrimSpace(c.Child(NamespaceDSig, "X509IssuerName").Text())
			s := strings.TrimSpace(c.Child(NamespaceDSig, "X509SerialNumber").Text())
			n, ok := new(big.Int).SetString(s, 10)
			if !ok || len(s) > 100 {
				return fmt.Errorf("%w: X509SerialNumber %q", ErrFormat, s)
			}
			id.Serial = n
		case c.Is(NamespaceDSig, "X509SKI"):
			ski, err := decodeB64(c.Text(), 64)
			if err != nil {
				return fmt.Errorf("%w: X509SKI: %v", ErrFormat, err)
			}
			id.SKI = ski
		}
	}
	return nil
}

// decodeB64 decodes base64 with embedded whitespace, refusing more than
// max decoded bytes before decoding.
func decodeB64(s string, max int) ([]byte, error) {
	if len(s)/4*3 > max+max/2+1024 {
		return nil, fmt.Errorf("%w: base64 value of %d characters, limit %d bytes", ErrTooLarge, len(s), max)
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrFormat, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), max)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty value", ErrFormat)
	}
	return b, nil
}
