package egvpsoap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The namespaces of the SOAP 1.1 envelope and of the EGVP web service.
const (
	EnvelopeNS = "http://schemas.xmlsoap.org/soap/envelope/"
	ServiceNS  = "urn:de:bos-bremen:egvp:ws"
)

// ErrFormat is wrapped by every error about a response that is not the SOAP the
// WSDL describes.
var ErrFormat = errors.New("egvpsoap: malformed response")

// Fault is a SOAP 1.1 fault the service answered with.
type Fault struct {
	// Code is the faultcode as sent (soap:Client, soap:Server, ...), String the
	// faultstring, Actor the faultactor; Detail the detail element's text, capped.
	Code, String, Actor, Detail string
}

func (f *Fault) Error() string {
	s := fmt.Sprintf("egvpsoap: SOAP fault %s: %s", f.Code, f.String)
	if f.Detail != "" {
		s += " (" + f.Detail + ")"
	}
	return s
}

// Server reports a fault the service blames on itself (faultcode Server), which a
// later attempt may not meet.
func (f *Fault) Server() bool {
	_, local, _ := strings.Cut(f.Code, ":")
	if local == "" {
		local = f.Code
	}
	return strings.HasPrefix(local, "Server")
}

// maxDetail caps the fault detail kept for the error message.
const maxDetail = 1024

type soapFault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Actor  string `xml:"faultactor"`
	Detail struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"detail"`
}

// buildEnvelope writes the SOAP 1.1 request whose body element is op in the service
// namespace with the children fields writes (unqualified, as the schema has them).
func buildEnvelope(op string, fields func(w *writer)) []byte {
	w := &writer{}
	w.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soap:Envelope xmlns:soap="` + EnvelopeNS + `"><soap:Body><egvp:` + op + ` xmlns:egvp="` + ServiceNS + `">`)
	fields(w)
	w.b.WriteString(`</egvp:` + op + `></soap:Body></soap:Envelope>`)
	return w.b.Bytes()
}

// writer writes unqualified child elements.
type writer struct{ b bytes.Buffer }

func (w *writer) text(name, value string) {
	w.b.WriteString("<" + name + ">")
	_ = xml.EscapeText(&w.b, []byte(value))
	w.b.WriteString("</" + name + ">")
}

// parseEnvelope reads a SOAP 1.1 response whose body holds the element want (in the
// service namespace) into v, or a Fault, returned as *Fault. Anything else is an
// error wrapping ErrFormat.
func parseEnvelope(r io.Reader, want string, v any) error {
	d := xml.NewDecoder(r)
	// Only UTF-8 (and its ASCII subset) is read; a declared other charset is refused.
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-8", "us-ascii":
			return r, nil
		}
		return nil, fmt.Errorf("charset %q", label)
	}
	env, err := nextStart(d)
	if err != nil {
		return err
	}
	if env.Name.Space != EnvelopeNS || env.Name.Local != "Envelope" {
		return fmt.Errorf("%w: the root is {%s}%s, not a SOAP 1.1 Envelope", ErrFormat, env.Name.Space, env.Name.Local)
	}
	body, err := nextStart(d)
	if err != nil {
		return err
	}
	if body.Name.Space == EnvelopeNS && body.Name.Local == "Header" {
		if err := d.Skip(); err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if body, err = nextStart(d); err != nil {
			return err
		}
	}
	if body.Name.Space != EnvelopeNS || body.Name.Local != "Body" {
		return fmt.Errorf("%w: {%s}%s where the Body belongs", ErrFormat, body.Name.Space, body.Name.Local)
	}
	el, err := nextStart(d)
	if err != nil {
		return err
	}
	switch {
	case el.Name.Space == EnvelopeNS && el.Name.Local == "Fault":
		var f soapFault
		if err := d.DecodeElement(&f, &el); err != nil {
			return fmt.Errorf("%w: the fault: %v", ErrFormat, err)
		}
		detail := strings.TrimSpace(string(f.Detail.Inner))
		if len(detail) > maxDetail {
			detail = detail[:maxDetail]
		}
		if f.Code == "" {
			return fmt.Errorf("%w: a fault without faultcode", ErrFormat)
		}
		return &Fault{Code: strings.TrimSpace(f.Code), String: strings.TrimSpace(f.String), Actor: f.Actor, Detail: detail}
	case el.Name.Space == ServiceNS && el.Name.Local == want:
		if err := d.DecodeElement(v, &el); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, want, err)
		}
	default:
		return fmt.Errorf("%w: the body holds {%s}%s, want %s", ErrFormat, el.Name.Space, el.Name.Local, want)
	}
	return rest(d)
}

// nextStart returns the next start element, skipping character data that is only
// white space, comments and processing instructions; a DTD is refused.
func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, fmt.Errorf("%w: text outside the elements", ErrFormat)
			}
		case xml.Directive:
			return xml.StartElement{}, fmt.Errorf("%w: a DTD or other directive", ErrFormat)
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("%w: </%s> where an element belongs", ErrFormat, t.Name.Local)
		}
	}
}

// rest checks that after the body element only the closing Body and Envelope follow.
func rest(d *xml.Decoder) error {
	ends := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if ends != 2 {
				return fmt.Errorf("%w: the envelope is not closed", ErrFormat)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			ends++
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("%w: text after the body element", ErrFormat)
			}
		case xml.StartElement:
			return fmt.Errorf("%w: a second body element {%s}%s", ErrFormat, t.Name.Space, t.Name.Local)
		case xml.Directive:
			return fmt.Errorf("%w: a directive", ErrFormat)
		}
	}
}
