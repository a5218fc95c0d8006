package asic

import (
	"crypto"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// NamespaceASiC is the namespace of ASiCManifest and XAdESSignatures
// (EN 319 162-1 annex A).
const NamespaceASiC = "http://uri.etsi.org/02918/v1.2.1#"

const maxManifestRefs = 1000

// manifestLimits bound the XML parser for a manifest.
var manifestLimits = xmldsig.Limits{MaxBytes: 4 << 20, MaxDepth: 16, MaxNodes: 50_000, MaxAttributes: 16}

// Manifest is an ASiCManifest: the signature or timestamp it belongs to
// and the data objects it lists with their digests.
type Manifest struct {
	// Name is the manifest's entry name.
	Name string
	// SigReference is the URI of the signature (or timestamp) over the
	// manifest.
	SigReference string
	References   []ManifestReference
}

// ManifestReference is one asic:DataObjectReference.
type ManifestReference struct {
	URI    string
	Hash   crypto.Hash
	Digest []byte
	// Err is set when the entry cannot be checked (unknown algorithm,
	// unreadable digest).
	Err error
}

// ParseManifest reads an ASiCManifest.
func ParseManifest(f File) (*Manifest, error) {
	doc, err := xmldsig.Parse(f.Data, manifestLimits)
	if err != nil {
		return nil, fmt.Errorf("asic: manifest %s: %w", f.Name, err)
	}
	root := doc.Root
	if !root.Is(NamespaceASiC, "ASiCManifest") && !root.Is(NamespaceASiC, "ASiCArchiveManifest") {
		return nil, fmt.Errorf("%w: %s is not an ASiCManifest", ErrMalformed, f.Name)
	}
	m := &Manifest{Name: f.Name}
	sr := root.Child(NamespaceASiC, "SigReference")
	if sr == nil {
		return nil, fmt.Errorf("%w: manifest %s has no SigReference", ErrMalformed, f.Name)
	}
	m.SigReference, _ = sr.Attr("URI")
	refs := root.ChildrenNamed(NamespaceASiC, "DataObjectReference")
	if len(refs) == 0 || len(refs) > maxManifestRefs {
		return nil, fmt.Errorf("%w: manifest %s has %d data object references", ErrMalformed, f.Name, len(refs))
	}
	for _, r := range refs {
		var mr ManifestReference
		mr.URI, _ = r.Attr("URI")
		alg, _ := r.Child(xmldsig.NamespaceDSig, "DigestMethod").Attr("Algorithm")
		if mr.Hash, mr.Err = xmldsig.DigestAlgorithm(alg); mr.Err == nil {
			mr.Digest, mr.Err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(r.Child(xmldsig.NamespaceDSig, "DigestValue").Text()), ""))
		}
		m.References = append(m.References, mr)
	}
	return m, nil
}

// RefStatus is the outcome of checking one manifest reference.
type RefStatus string

// Manifest reference outcomes.
const (
	RefOK       RefStatus = "ok"
	RefMissing  RefStatus = "missing"
	RefMismatch RefStatus = "digest-mismatch"
)

// CheckedReference is a manifest reference against the container.
type CheckedReference struct {
	ManifestReference
	// Name is the data object the URI resolved to.
	Name   string
	Status RefStatus
	Detail string
}

// Check compares every reference of m with the container's data objects.
func (m *Manifest) Check(c *Container) []CheckedReference {
	var out []CheckedReference
	for _, r := range m.References {
		cr := CheckedReference{ManifestReference: r}
		data, name, ok := c.Resolve(r.URI)
		cr.Name = name
		switch {
		case r.Err != nil:
			cr.Status, cr.Detail = RefMismatch, r.Err.Error()
		case !ok:
			cr.Status, cr.Detail = RefMissing, fmt.Sprintf("%s is not in the container", r.URI)
		default:
			h := r.Hash.New()
			h.Write(data)
			if subtle.ConstantTimeCompare(h.Sum(nil), r.Digest) == 1 {
				cr.Status = RefOK
			} else {
				cr.Status, cr.Detail = RefMismatch, fmt.Sprintf("digest of %s does not match", name)
			}
		}
		out = append(out, cr)
	}
	return out
}

// ManifestFor returns the manifest whose SigReference names the signature
// entry sigName.
func (c *Container) ManifestFor(sigName string) (*Manifest, error) {
	var found *Manifest
	for _, f := range c.Manifests {
		m, err := ParseManifest(f)
		if err != nil {
			return nil, err
		}
		_, ref, _ := strings.Cut(unescape(m.SigReference), "META-INF/")
		if "META-INF/"+ref != sigName && unescape(m.SigReference) != sigName {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: two manifests name %s", ErrMalformed, sigName)
		}
		found = m
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no ASiCManifest names %s", ErrMalformed, sigName)
	}
	return found, nil
}
