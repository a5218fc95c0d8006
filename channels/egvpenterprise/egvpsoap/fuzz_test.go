package egvpsoap

import (
	"bytes"
	"io"
	"testing"
)

// FuzzParseResponse feeds arbitrary bytes to the response parser as each of the
// responses the client reads: it must return an error or a value, never panic.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><n:receiveMessageResponse xmlns:n="urn:de:bos-bremen:egvp:ws"><messageID>a</messageID><messageZIP>UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==</messageZIP><returnCode>OK</returnCode></n:receiveMessageResponse></s:Body></s:Envelope>`))
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>x</faultstring><detail><a>b</a></detail></s:Fault></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var uncommitted struct {
			Messages []struct {
				MessageID string `xml:"messageID"`
			} `xml:"uncommittedMessages"`
			ReturnCode string `xml:"returnCode"`
		}
		_ = parseEnvelope(bytes.NewReader(data), "getUncommittedMessageIDsResponse", &uncommitted)
		var received struct {
			ZIP        *string `xml:"messageZIP"`
			ReturnCode string  `xml:"returnCode"`
		}
		if err := parseEnvelope(bytes.NewReader(data), "receiveMessageResponse", &received); err == nil && received.ZIP != nil {
			_, _ = decodeBase64(*received.ZIP)
		}
		// The streaming path: the messageZIP taken out on the way.
		var streamed struct {
			ZIP        *string `xml:"messageZIP"`
			ReturnCode string  `xml:"returnCode"`
		}
		_ = parseEnvelope(newZIPFilter(bytes.NewReader(data), io.Discard), "receiveMessageResponse", &streamed)
		var commit struct {
			ReturnCode string `xml:"returnCode"`
		}
		_ = parseEnvelope(bytes.NewReader(data), "commitReceivedMessageResponse", &commit)
	})
}

// TestDecodeBase64: xs:base64Binary may be folded with white space.
func TestDecodeBase64(t *testing.T) {
	for _, in := range []string{"UEsDBA==", "UEsD\r\nBA==", " UE sD\tBA== \n"} {
		got, err := decodeBase64(in)
		if err != nil || string(got) != "PK\x03\x04" {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := decodeBase64("UEsD!A=="); err == nil {
		t.Error("not base64, no error")
	}
}
