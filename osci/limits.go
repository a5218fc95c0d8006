package osci

import "github.com/poststelle/poststelle/crypto/xmldsig"

// Limits bound the work spent on one message. Zero fields take the values of
// DefaultLimits.
type Limits struct {
	// MaxMessageBytes caps the whole MIME message as it arrives.
	MaxMessageBytes int64
	// MaxEnvelopeBytes caps the SOAP part <osci@message>, which is held in
	// memory and parsed; attachments are not.
	MaxEnvelopeBytes int
	// MaxAttachmentBytes caps one attachment part.
	MaxAttachmentBytes int64
	// MaxParts caps the number of MIME parts, the SOAP part included.
	MaxParts int
	// MaxHeaderBytes caps the header block of the message and of each part.
	MaxHeaderBytes int
	// XML bounds the parsing of the envelope.
	XML xmldsig.Limits
}

// DefaultLimits suit EGVP traffic: EGVP caps a message at 1,000 files and a few hundred
// MiB; the envelope of a message whose documents travel as attachments stays small.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:    1 << 30,
		MaxEnvelopeBytes:   32 << 20,
		MaxAttachmentBytes: 512 << 20,
		MaxParts:           1001,
		MaxHeaderBytes:     16 << 10,
		XML:                xmldsig.Limits{MaxBytes: 32 << 20, MaxDepth: 48, MaxNodes: 500_000, MaxAttributes: 64, MaxAttributeBytes: 16 << 10},
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes > 0 {
		d.MaxMessageBytes = l.MaxMessageBytes
	}
	if l.MaxEnvelopeBytes > 0 {
		d.MaxEnvelopeBytes = l.MaxEnvelopeBytes
	}
	if l.MaxAttachmentBytes > 0 {
		d.MaxAttachmentBytes = l.MaxAttachmentBytes
	}
	if l.MaxParts > 0 {
		d.MaxParts = l.MaxParts
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.XML != (xmldsig.Limits{}) {
		d.XML = l.XML
	}
	if d.XML.MaxBytes < d.MaxEnvelopeBytes {
		d.XML.MaxBytes = d.MaxEnvelopeBytes
	}
	return d
}
