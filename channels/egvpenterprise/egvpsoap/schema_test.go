package egvpsoap_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/internal/corpus"
)

// TestSOAPAgainstWSDLSchema validates the body of every request the client sends and
// every response the stand-in gives, for the four operations, against the WSDL's own
// schema types with xmllint (libxml2, an independent validator).
func TestSOAPAgainstWSDLSchema(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is not installed: run test/setup.sh")
	}
	schema := wsdlSchema(t)
	s := enterprisetest.New(box)
	zip, err := enterprisetest.SampleZIP(corpus.Path(t, "egvp", "Messages", "TestnachrichtEeb_1"))
	if err != nil {
		t.Fatal(err)
	}
	s.Add(box, enterprisetest.Message{ID: "govapp_1", ZIP: zip})
	var mu sync.Mutex
	var responses [][]byte
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		mu.Lock()
		responses = append(responses, rec.Body.Bytes())
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer hs.Close()
	c := &egvpsoap.Client{Endpoint: hs.URL, HTTP: hs.Client()}
	ctx := context.Background()
	if _, err := c.GetUncommittedMessageIDs(ctx, box); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiveMessage(ctx, box, "govapp_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CommitReceivedMessage(ctx, box, "govapp_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendAsynchroniousMessage(ctx, &egvpsoap.SendRequest{UserID: box, MessageType: "Allgemeine Nachricht",
		ReceiverID: "DE.Justiz.x", ReceiverKey: "USER_ID", Subject: "s", SignMessage: true, VisualXML: []byte("<a/>"),
		Attachments: []egvpsoap.Attachment{{Name: "a.pdf", Data: []byte("%PDF")}}}); err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, r := range s.Requests() {
		docs = append(docs, r.Body)
	}
	docs = append(docs, responses...)
	if len(docs) != 8 {
		t.Fatalf("%d documents, want 4 requests and 4 responses", len(docs))
	}
	dir := t.TempDir()
	for i, d := range docs {
		f := filepath.Join(dir, "body-"+string(rune('a'+i))+".xml")
		if err := os.WriteFile(f, bodyElement(t, d), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", schema, f).CombinedOutput()
		if err != nil {
			t.Errorf("%s does not validate: %v\n%s", bodyElement(t, d)[:min(200, len(bodyElement(t, d)))], err, out)
		}
	}
}

// wsdlSchema writes the WSDL's xs:schema as a schema document of its own, with the
// tns prefix the WSDL's root declares.
func wsdlSchema(t *testing.T) string {
	t.Helper()
	wsdl, err := os.ReadFile(corpus.Path(t, "egvp", "EgvpEnterpriseSoap", "EgvpService.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(wsdl, []byte("<xs:schema "))
	end := bytes.Index(wsdl, []byte("</xs:schema>"))
	if start < 0 || end < start {
		t.Fatal("no xs:schema in the WSDL")
	}
	doc := `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		strings.Replace(string(wsdl[start:end+len("</xs:schema>")]), "<xs:schema ", `<xs:schema xmlns:tns="urn:de:bos-bremen:egvp:ws" `, 1)
	path := filepath.Join(t.TempDir(), "egvp-ws.xsd")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// bodyElement cuts the SOAP body's element out of an envelope as both sides write it.
func bodyElement(t *testing.T, env []byte) []byte {
	t.Helper()
	_, rest, ok := bytes.Cut(env, []byte("<soap:Body>"))
	body, _, ok2 := bytes.Cut(rest, []byte("</soap:Body>"))
	if !ok || !ok2 {
		t.Fatalf("no soap:Body in %.200s", env)
	}
	return body
}
