package egvpsoap_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
)

const box = "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"

func standIn(t *testing.T) (*enterprisetest.Server, *egvpsoap.Client) {
	t.Helper()
	s := enterprisetest.New(box)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, &egvpsoap.Client{Endpoint: hs.URL + "/EGVP-WS/EGVP-WebService", HTTP: hs.Client()}
}

func TestReceiveAndCommit(t *testing.T) {
	ctx := context.Background()
	s, c := standIn(t)
	when := time.Date(2021, 10, 29, 8, 20, 53, 0, time.UTC)
	s.Add(box, enterprisetest.Message{ID: "govapp_1", ZIP: []byte("zip one"), OSCIDate: when})
	s.Add(box, enterprisetest.Message{ID: "govapp_2", ZIP: []byte("zip <two> & more")})
	ids, err := c.GetUncommittedMessageIDs(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0].MessageID != "govapp_1" || !ids[0].OSCIDate.Equal(when) || ids[1].MessageID != "govapp_2" {
		t.Fatalf("ids %+v", ids)
	}
	got, err := c.ReceiveMessage(ctx, box, "govapp_2")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.ZIP) != "zip <two> & more" || got.MessageID != "govapp_2" {
		t.Fatalf("received %+v", got)
	}
	if code, err := c.CommitReceivedMessage(ctx, box, "govapp_2"); err != nil || code != egvpsoap.CommitOK {
		t.Fatalf("commit: %q %v", code, err)
	}
	// A repeated commit (after a crash) is success too.
	if code, err := c.CommitReceivedMessage(ctx, box, "govapp_2"); err != nil || code != egvpsoap.CommitAlreadyCommitted {
		t.Fatalf("second commit: %q %v", code, err)
	}
	ids, err = c.GetUncommittedMessageIDs(ctx, box)
	if err != nil || len(ids) != 1 || ids[0].MessageID != "govapp_1" {
		t.Fatalf("after the commit: %+v %v", ids, err)
	}
	if got := s.Committed(box); !slices.Equal(got, []string{"govapp_2"}) {
		t.Errorf("committed %q", got)
	}
}

func TestReturnCodes(t *testing.T) {
	ctx := context.Background()
	s, c := standIn(t)
	s.Add(box, enterprisetest.Message{ID: "known", ZIP: []byte("x")})
	var rc *egvpsoap.ReturnCodeError
	if _, err := c.CommitReceivedMessage(ctx, box, "unknown"); !errors.As(err, &rc) || rc.Code != "NO_SUCH_MESSAGE" {
		t.Errorf("commit of an unknown id: %v", err)
	}
	if _, err := c.CommitReceivedMessage(ctx, box, "known"); !errors.As(err, &rc) || rc.Code != "MESSAGE_NOT_PROCESSED" {
		t.Errorf("commit before receive: %v", err)
	}
	if _, err := c.ReceiveMessage(ctx, box, "unknown"); !errors.As(err, &rc) || rc.Code != "NO_SUCH_MESSAGE" {
		t.Errorf("receive of an unknown id: %v", err)
	}
	if _, err := c.GetUncommittedMessageIDs(ctx, "nobody"); !errors.As(err, &rc) || rc.Code != "NO_SUCH_ACCOUNT" || rc.Operation != "getUncommittedMessageIDs" {
		t.Errorf("unknown mailbox: %v", err)
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	s, c := standIn(t)
	s.FailNext("getUncommittedMessageIDs", enterprisetest.FailFault, enterprisetest.FailHTTP, enterprisetest.FailGeneral)
	var f *egvpsoap.Fault
	if _, err := c.GetUncommittedMessageIDs(ctx, box); !errors.As(err, &f) || !f.Server() || f.String != "injected failure" {
		t.Errorf("fault: %v", err)
	}
	var he *egvpsoap.HTTPError
	if _, err := c.GetUncommittedMessageIDs(ctx, box); !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Errorf("HTTP error: %v", err)
	}
	var rc *egvpsoap.ReturnCodeError
	if _, err := c.GetUncommittedMessageIDs(ctx, box); !errors.As(err, &rc) || rc.Code != "GENERAL_ERROR" {
		t.Errorf("general error: %v", err)
	}
	if _, err := c.GetUncommittedMessageIDs(ctx, box); err != nil {
		t.Errorf("after the failures: %v", err)
	}
}

func TestSend(t *testing.T) {
	ctx := context.Background()
	s, c := standIn(t)
	req := &egvpsoap.SendRequest{UserID: box, MessageType: "Allgemeine Nachricht", ReceiverID: "DE.Justiz.court",
		ReceiverKey: "USER_ID", Subject: "Antwort <zu> 1 K 519/20.KO", SignMessage: true, VisualXML: []byte("<Nachricht/>"),
		Attachments: []egvpsoap.Attachment{{Name: "xjustiz_nachricht.xml", Data: []byte("<x/>")}, {Name: "a.pdf", Data: []byte{0, 1, 2}}}}
	id, err := c.SendAsynchroniousMessage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sent := s.Sent()
	if len(sent) != 1 || sent[0].CustomID != id || sent[0].Subject != req.Subject || !sent[0].SignMessage ||
		sent[0].ReceiverID != req.ReceiverID || string(sent[0].VisualXML) != "<Nachricht/>" || len(sent[0].Attachments) != 2 ||
		sent[0].Attachments[1].Name != "a.pdf" || string(sent[0].Attachments[1].Data) != "\x00\x01\x02" {
		t.Fatalf("sent %+v", sent)
	}
	req.Subject = ""
	var rc *egvpsoap.ReturnCodeError
	if _, err := c.SendAsynchroniousMessage(ctx, req); !errors.As(err, &rc) || rc.Code != "SUBJECT_REQUIRED" {
		t.Errorf("without subject: %v", err)
	}
}

// TestResponseLimits feeds the client responses a hostile or broken service could
// send.
func TestResponseLimits(t *testing.T) {
	ok := `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
		`<n:getUncommittedMessageIDsResponse xmlns:n="urn:de:bos-bremen:egvp:ws"><returnCode>OK</returnCode></n:getUncommittedMessageIDsResponse></s:Body></s:Envelope>`
	cases := []struct {
		name, ctype, body string
		status            int
		want              error
	}{
		{"too large", "text/xml", ok + strings.Repeat(" ", 2000), 200, egvpsoap.ErrTooLarge},
		{"mtom", `multipart/related; type="application/xop+xml"`, ok, 200, egvpsoap.ErrMultipart},
		{"soap 1.2 envelope", "text/xml", strings.ReplaceAll(ok, "http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"), 200, egvpsoap.ErrFormat},
		{"dtd", "text/xml", `<!DOCTYPE x [<!ENTITY a "b">]>` + ok[len(`<?xml version="1.0"?>`):], 200, egvpsoap.ErrFormat},
		{"wrong element", "text/xml", strings.ReplaceAll(ok, "getUncommittedMessageIDsResponse", "receiveMessageResponse"), 200, egvpsoap.ErrFormat},
		{"two body elements", "text/xml", strings.Replace(ok, "</s:Body>", "<x/></s:Body>", 1), 200, egvpsoap.ErrFormat},
		{"no return code", "text/xml", strings.Replace(ok, "<returnCode>OK</returnCode>", "", 1), 200, egvpsoap.ErrFormat},
		{"unclosed", "text/xml", ok[:len(ok)-len("</s:Envelope>")], 200, egvpsoap.ErrFormat},
		{"bad id", "text/xml", strings.Replace(ok, "<returnCode>", "<uncommittedMessages><messageID>a\nb</messageID></uncommittedMessages><returnCode>", 1), 200, egvpsoap.ErrFormat},
		{"latin-1", "text/xml", `<?xml version="1.0" encoding="ISO-8859-1"?>` + ok[len(`<?xml version="1.0"?>`):], 200, egvpsoap.ErrFormat},
		{"500 without fault", "text/xml", ok, 500, egvpsoap.ErrFormat},
		{"html", "text/html", "<html/>", 200, egvpsoap.ErrFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer hs.Close()
			c := &egvpsoap.Client{Endpoint: hs.URL, HTTP: hs.Client(), MaxResponseBytes: int64(len(ok) + 1000)}
			_, err := c.GetUncommittedMessageIDs(context.Background(), box)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	s := enterprisetest.New(box)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "poststelle" || p != "geheim" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer hs.Close()
	c := &egvpsoap.Client{Endpoint: hs.URL, HTTP: hs.Client()}
	var he *egvpsoap.HTTPError
	if _, err := c.GetUncommittedMessageIDs(context.Background(), box); !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Errorf("without credentials: %v", err)
	}
	c.Username, c.Password = "poststelle", "geheim"
	if _, err := c.GetUncommittedMessageIDs(context.Background(), box); err != nil {
		t.Errorf("with credentials: %v", err)
	}
}
