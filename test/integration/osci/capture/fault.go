package capture

import (
	"fmt"
	"net/http"
)

// faultBoundary is the MIME boundary of the fault answer; the library reads
// it from the Content-Type line inside the body, so any token works.
const faultBoundary = "capture_fault_boundary"

// Fault is an OSCI SOAP fault carrying code, in the MIME framing OSCI 1.2
// gives every message (the body starts with the MIME headers, as the
// library's own SOAPFault writes them). 9000 and 9503 (the supplier's
// internal errors) are server faults, every other code a client fault, as in
// the library's list of codes.
func Fault(code string) Response {
	kind := "Client"
	if code == "9000" || code == "9503" {
		kind = "Server"
	}
	envelope := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:osci="http://www.osci.de/2002/04/osci">` +
		`<soap:Body><soap:Fault><faultcode>soap:` + kind + `</faultcode><faultstring>capture: recorded, not processed</faultstring>` +
		`<detail><osci:Code>` + code + `</osci:Code></detail></soap:Fault></soap:Body></soap:Envelope>`
	body := fmt.Sprintf("\r\nMIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=%s; type=text/xml\r\n"+
		"\r\n--%s\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <osci@message>\r\n\r\n"+
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\r\n%s\r\n--%s--\r\n", faultBoundary, faultBoundary, envelope, faultBoundary)
	h := http.Header{}
	h.Set("Content-Type", "text/xml; charset=UTF-8")
	return Response{Status: http.StatusOK, Header: h, Body: []byte(body)}
}
