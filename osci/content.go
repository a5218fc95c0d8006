package osci

import (
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// ContentPackage is the osci:ContentPackage of a delivery's body: content containers in
// the clear and xenc:EncryptedData, each of which decrypts to one more container.
type ContentPackage struct {
	Element    *xmldsig.Element
	Encrypted  []*xmldsig.Element
	Containers []*ContentContainer
}

// ContentContainer is an osci:ContentContainer: the unit authors sign and encrypt.
type ContentContainer struct {
	Element *xmldsig.Element
	ID      string
	// Signatures are the authors' ds:Signature elements over the container's contents.
	Signatures []*xmldsig.Element
	Contents   []*Content
	Encrypted  []*xmldsig.Element
}

// Content is one osci:Content. Exactly one of the payload fields is set: Href (an
// attachment), Base64 (an osci:Base64Content), Container (a nested container), XML (other
// XML data) or Text.
type Content struct {
	Element *xmldsig.Element
	ID      string
	// Href is the reference to an attachment, "cid:" + its Content-ID.
	Href string
	// Base64ID is the Id of the osci:Base64Content, which EGVP uses as the file name.
	Base64ID  string
	Base64    []byte
	Container *ContentContainer
	XML       *xmldsig.Element
	Text      string
}

// AttachmentID is the Content-ID the content refers to, "" when it is inline.
func (c *Content) AttachmentID() string {
	id, ok := strings.CutPrefix(c.Href, "cid:")
	if !ok {
		return ""
	}
	return id
}

const maxContents = 4096

func parseContentPackage(e *xmldsig.Element) (*ContentPackage, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	p := &ContentPackage{Element: e}
	for _, k := range kids {
		switch {
		case k.Is(NamespaceXEnc, "EncryptedData") && len(p.Containers) == 0:
			p.Encrypted = append(p.Encrypted, k)
		case isOSCI(k, "ContentContainer"):
			c, err := parseContainer(k)
			if err != nil {
				return nil, err
			}
			p.Containers = append(p.Containers, c)
		default:
			return nil, formatErr("<%s> out of place in osci:ContentPackage", k.Local)
		}
	}
	if len(p.Encrypted)+len(p.Containers) > maxContents {
		return nil, formatErr("osci:ContentPackage with %d entries", len(kids))
	}
	return p, nil
}

// ParseContainer reads an osci:ContentContainer, as one decrypts to.
func ParseContainer(e *xmldsig.Element) (*ContentContainer, error) {
	if !isOSCI(e, "ContentContainer") {
		return nil, formatErr("<%s> is not an osci:ContentContainer", e.Local)
	}
	return parseContainer(e)
}

func parseContainer(e *xmldsig.Element) (*ContentContainer, error) {
	c := &ContentContainer{Element: e, ID: id(e)}
	if c.ID == "" {
		return nil, formatErr("osci:ContentContainer without Id")
	}
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) > maxContents {
		return nil, formatErr("osci:ContentContainer with %d entries", len(kids))
	}
	// The schema's order: ds:Signature*, Content*, xenc:EncryptedData*.
	stage := 0
	for _, k := range kids {
		switch {
		case k.Is(xmldsig.NamespaceDSig, "Signature") && stage == 0:
			c.Signatures = append(c.Signatures, k)
		case isOSCI(k, "Content") && stage <= 1:
			stage = 1
			ct, err := parseContent(k)
			if err != nil {
				return nil, err
			}
			c.Contents = append(c.Contents, ct)
		case k.Is(NamespaceXEnc, "EncryptedData"):
			stage = 2
			c.Encrypted = append(c.Encrypted, k)
		default:
			return nil, formatErr("<%s> out of place in osci:ContentContainer %q", k.Local, c.ID)
		}
	}
	return c, nil
}

func parseContent(e *xmldsig.Element) (*Content, error) {
	c := &Content{Element: e, ID: id(e)}
	c.Href, _ = e.Attr("href")
	kids := e.Elements()
	if c.Href != "" {
		if c.AttachmentID() == "" || len(kids) > 0 || strings.TrimSpace(e.Text()) != "" {
			return nil, formatErr("osci:Content href %.64q must be an empty cid: reference", c.Href)
		}
		return c, nil
	}
	switch {
	case len(kids) == 0:
		t := e.Text()
		if len(t) > maxBase64Blob {
			return nil, formatErr("osci:Content of %d bytes", len(t))
		}
		c.Text = t
		return c, nil
	case len(kids) > 1:
		return nil, formatErr("osci:Content with %d elements", len(kids))
	}
	if _, err := onlyElements(e); err != nil {
		return nil, err
	}
	k := kids[0]
	var err error
	switch {
	case isOSCI(k, "Base64Content"):
		c.Base64ID = id(k)
		if c.Base64ID == "" {
			return nil, formatErr("osci:Base64Content without Id")
		}
		c.Base64, err = base64Text(k, maxBase64Blob)
	case isOSCI(k, "ContentContainer"):
		c.Container, err = parseContainer(k)
	default:
		c.XML = k
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ContentPackageXML returns the content of the envelope's osci:ContentPackage for
// another message, as an intermediary passes a delivery on (storeDelivery to
// responseToFetchDelivery, forwardDelivery to acceptDelivery): each child in Canonical
// XML 1.0, which declares on it the namespaces it had in scope, so the authors'
// signatures and the readers' encryption inside stay as they were. Nil when there is
// no package.
func (env *Envelope) ContentPackageXML() []byte {
	if env.ContentPackage == nil {
		return nil
	}
	c, _ := xmldsig.ParseC14N(C14NInclusive)
	var out []byte
	for _, k := range env.ContentPackage.Element.Elements() {
		out = append(out, c.Canonicalize(k, nil)...)
	}
	return out
}

// CheckAttachments ties the message's parts to its content: every cid: reference of a
// clear container (nested ones included) must name a part, and every part must be
// referenced, by a clear content or by a CipherReference of the package; a part nobody
// refers to would be carried along unseen. Encrypted containers name their attachments
// inside the ciphertext: DecryptContainer fails on one that is missing.
func (env *Envelope) CheckAttachments(m *Multipart) error {
	used := map[string]bool{}
	if env.ContentPackage != nil {
		for _, c := range env.ContentPackage.Containers {
			if err := containerRefs(c, m, used); err != nil {
				return err
			}
		}
		for _, e := range env.ContentPackage.Encrypted {
			markCipherRefs(e, used)
		}
	}
	if env.EncryptedData != nil {
		markCipherRefs(env.EncryptedData, used)
	}
	for _, p := range m.Parts {
		if !used[p.ContentID] && !encryptedOnly(env) {
			return fmt.Errorf("%w: part <%s> is referenced by no content", ErrFormat, p.ContentID)
		}
	}
	return nil
}

// encryptedOnly: a package whose containers are all encrypted may refer to any part
// from inside its ciphertexts.
func encryptedOnly(env *Envelope) bool {
	return env.ContentPackage != nil && len(env.ContentPackage.Encrypted) > 0
}

func containerRefs(c *ContentContainer, m *Multipart, used map[string]bool) error {
	for _, ct := range c.Contents {
		if a := ct.AttachmentID(); a != "" {
			if m.Part(a) == nil {
				return fmt.Errorf("%w: content of container %q refers to missing part <%s>", ErrFormat, c.ID, a)
			}
			used[a] = true
		}
		if ct.Container != nil {
			if err := containerRefs(ct.Container, m, used); err != nil {
				return err
			}
		}
	}
	for _, e := range c.Encrypted {
		markCipherRefs(e, used)
	}
	return nil
}

// markCipherRefs marks the parts an EncryptedData's CipherReference names.
func markCipherRefs(e *xmldsig.Element, used map[string]bool) {
	cr := e.Child(NamespaceXEnc, "CipherData").Child(NamespaceXEnc, "CipherReference")
	if uri, _ := cr.Attr("URI"); strings.HasPrefix(uri, "cid:") {
		used[uri[len("cid:"):]] = true
	}
}
