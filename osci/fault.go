package osci

import (
	"bytes"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// SOAPFault is the soap:Fault of a Fault message (OSCI 1.2 soapMessageFault.xsd): the
// SOAP fault code (soap:Client or soap:Server), its text, and the OSCI feedback code in
// the detail.
type SOAPFault struct {
	FaultCode   string
	FaultString string
	Code        Code
}

func parseFault(e *xmldsig.Element) (*SOAPFault, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	f := &SOAPFault{}
	seen := map[string]bool{}
	for _, k := range kids {
		// SOAP 1.1 writes the fault's children unqualified.
		if k.Space != "" || seen[k.Local] {
			return nil, formatErr("<%s> in soap:Fault", k.Local)
		}
		seen[k.Local] = true
		switch k.Local {
		case "faultcode":
			f.FaultCode, err = text(k, 256)
		case "faultstring":
			f.FaultString, err = text(k, maxShortText)
		case "faultactor":
		case "detail":
			err = f.readDetail(k)
		default:
			err = formatErr("<%s> in soap:Fault", k.Local)
		}
		if err != nil {
			return nil, err
		}
	}
	if f.FaultCode == "" {
		return nil, formatErr("soap:Fault without faultcode")
	}
	return f, nil
}

func (f *SOAPFault) readDetail(d *xmldsig.Element) error {
	kids, err := onlyElements(d)
	if err != nil {
		return err
	}
	if len(kids) != 1 || !isOSCI(kids[0], "Code") {
		return formatErr("soap:Fault detail must hold one osci:Code")
	}
	t, err := text(kids[0], 8)
	if err != nil {
		return err
	}
	n, err := number(t)
	if err != nil || len(t) != 4 {
		return formatErr("fault code %q", t)
	}
	f.Code = Code(n)
	return nil
}

// ComposeFault writes the envelope of a SOAP fault for code: soap:Server for the
// supplier's internal errors (9000, 9503), soap:Client otherwise, as the reference
// library does; the fault string is the code's text.
func ComposeFault(code Code) []byte {
	kind := "soap:Client"
	if code == CodeInternalError || code == CodeClientCipherCertInternal {
		kind = "soap:Server"
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\r\n\r\n")
	b.WriteString(`<soap:Envelope xmlns:osci="` + NamespaceOSCI + `" xmlns:soap="` + NamespaceSOAP + `"><soap:Body><soap:Fault>`)
	writeText(&b, "faultcode", kind)
	writeText(&b, "faultstring", code.Text())
	b.WriteString(`<detail>`)
	writeText(&b, "osci:Code", code.String())
	b.WriteString(`</detail></soap:Fault></soap:Body></soap:Envelope>`)
	return b.Bytes()
}
