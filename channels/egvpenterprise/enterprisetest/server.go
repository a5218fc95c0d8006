// Package enterprisetest is a stand-in for the EGVP Enterprise web service, for
// tests: it follows the WSDL (testdata/egvp/EgvpEnterpriseSoap/EgvpService.wsdl,
// SOAP 1.1 document/literal, unqualified local elements) for the operations the
// connector calls, holds received messages per mailbox (built from the real export
// samples with SampleZIP), tracks commits, refuses a commit of an unknown id with
// NO_SUCH_MESSAGE, records sent messages, and can be told to fail. It parses the
// requests with its own types, not with the client's.
package enterprisetest

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

const (
	envelopeNS = "http://schemas.xmlsoap.org/soap/envelope/"
	serviceNS  = "urn:de:bos-bremen:egvp:ws"
	// maxRequest caps a request the stand-in reads.
	maxRequest = 256 << 20
)

// Message is one received message the stand-in holds for a mailbox.
type Message struct {
	ID       string
	ZIP      []byte
	OSCIDate time.Time
}

// Attachment is one file of a sent message.
type Attachment struct {
	Name string
	Data []byte
}

// Sent is a message handed in with sendAsynchroniousMessage.
type Sent struct {
	CustomID, UserID, MessageType, ReceiverID, ReceiverKey, Subject string
	SignMessage                                                     bool
	VisualXML, VisualXSL                                            []byte
	Attachments                                                     []Attachment
}

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	mu        sync.Mutex
	mailboxes map[string]*mailbox
	sent      []Sent
	fail      map[string][]Failure
	requests  []Request
	seq       int
	// sendState is the state of the messages sent next; states those of the sent
	// messages, by customID.
	sendState string
	states    map[string]string
}

// Request is one request as received, for tests that check the client's SOAP.
type Request struct {
	Operation  string
	SOAPAction string
	Body       []byte
}

type mailbox struct {
	order     []string
	messages  map[string]Message
	committed map[string]bool
	receives  map[string]int
}

// Failure is what the stand-in answers instead of the operation's response.
type Failure int

// The failures FailNext can inject.
const (
	// FailFault answers with a soap:Server fault (HTTP 500).
	FailFault Failure = iota + 1
	// FailHTTP answers 503 without SOAP.
	FailHTTP
	// FailGeneral answers the operation's response with returnCode GENERAL_ERROR.
	FailGeneral
	// FailLostAnswer carries the operation out (a sent message is recorded) and
	// closes the connection without answering: the answer lost on the way back.
	FailLostAnswer
)

// New returns a stand-in with the mailboxes userIDs and no messages.
func New(userIDs ...string) *Server {
	s := &Server{mailboxes: map[string]*mailbox{}, fail: map[string][]Failure{}}
	for _, u := range userIDs {
		s.mailboxes[u] = &mailbox{messages: map[string]Message{}, committed: map[string]bool{}, receives: map[string]int{}}
	}
	return s
}

// Add puts a received message into a mailbox; it is uncommitted until the client
// commits it.
func (s *Server) Add(userID string, m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[userID]
	if _, dup := mb.messages[m.ID]; !dup {
		mb.order = append(mb.order, m.ID)
	}
	mb.messages[m.ID] = m
}

// FailNext makes the next calls of op fail as listed, one failure per call.
func (s *Server) FailNext(op string, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[op] = append(s.fail[op], f...)
}

// Committed lists the committed ids of a mailbox in the order received.
func (s *Server) Committed(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	mb := s.mailboxes[userID]
	for _, id := range mb.order {
		if mb.committed[id] {
			out = append(out, id)
		}
	}
	return out
}

// Receives is how often receiveMessage fetched the message id.
func (s *Server) Receives(userID, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailboxes[userID].receives[id]
}

// Sent returns the messages handed in so far.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// request is the body element of any request the stand-in serves: the union of the
// operations' fields, all unqualified.
type request struct {
	XMLName     xml.Name
	UserID      *string `xml:"userID"`
	MessageID   *string `xml:"messageID"`
	CustomOrID  string  `xml:"customOrMessageID"`
	MessageType string  `xml:"messageType"`
	ReceiverID  string  `xml:"receiverID"`
	ReceiverKey string  `xml:"receiverKey"`
	Subject     string  `xml:"subject"`
	SignMessage string  `xml:"signMessage"`
	VisualXML   string  `xml:"visualXML"`
	VisualXSL   string  `xml:"visualXSL"`
	Attachments []struct {
		Data string `xml:"data"`
		Name string `xml:"name"`
	} `xml:"attachments"`
}

type envelope struct {
	XMLName xml.Name `xml:"http://schemas.xmlsoap.org/soap/envelope/ Envelope"`
	Body    struct {
		Inner []request `xml:",any"`
	} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
}

// ServeHTTP implements http.Handler: one SOAP 1.1 endpoint for every operation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		fault(w, "soap:Client", "content type "+ct+" is not SOAP 1.1's text/xml")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		fault(w, "soap:Client", err.Error())
		return
	}
	var env envelope
	if err := xml.Unmarshal(data, &env); err != nil || len(env.Body.Inner) != 1 {
		fault(w, "soap:Client", fmt.Sprintf("not a SOAP 1.1 envelope with one body element: %v", err))
		return
	}
	req := env.Body.Inner[0]
	op, found := strings.CutSuffix(req.XMLName.Local, "Request")
	action := strings.Trim(r.Header.Get("SOAPAction"), `"`)
	if !found || req.XMLName.Space != serviceNS || action != serviceNS+":"+op {
		fault(w, "soap:Client", fmt.Sprintf("body element {%s}%s with SOAPAction %q", req.XMLName.Space, req.XMLName.Local, action))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Operation: op, SOAPAction: action, Body: data})
	var lost bool
	if fs := s.fail[op]; len(fs) > 0 {
		s.fail[op] = fs[1:]
		switch fs[0] {
		case FailLostAnswer:
			lost = true
		case FailFault:
			fault(w, "soap:Server", "injected failure")
			return
		case FailHTTP:
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		case FailGeneral:
			respond(w, op, field("returnCode", "GENERAL_ERROR"))
			return
		}
	}
	if lost {
		// The operation's answer goes nowhere; the client sees the connection end.
		rw := w
		defer func() {
			if hj, ok := rw.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
		}()
		w = httptest.NewRecorder()
	}
	switch op {
	case "getUncommittedMessageIDs":
		s.uncommitted(w, req)
	case "receiveMessage":
		s.receive(w, req)
	case "commitReceivedMessage":
		s.commit(w, req)
	case "sendAsynchroniousMessage":
		s.send(w, req)
	case "getState":
		s.state(w, req)
	default:
		fault(w, "soap:Client", "the stand-in does not serve "+op)
	}
}

func (s *Server) mailbox(w http.ResponseWriter, op string, req request) *mailbox {
	if req.UserID == nil || *req.UserID == "" {
		respond(w, op, field("returnCode", "USERID_REQUIRED"))
		return nil
	}
	mb := s.mailboxes[*req.UserID]
	if mb == nil {
		respond(w, op, field("returnCode", "NO_SUCH_ACCOUNT"))
	}
	return mb
}

func (s *Server) uncommitted(w http.ResponseWriter, req request) {
	const op = "getUncommittedMessageIDs"
	mb := s.mailbox(w, op, req)
	if mb == nil {
		return
	}
	var b strings.Builder
	n := 0
	for _, id := range mb.order {
		if mb.committed[id] {
			continue
		}
		n++
		m := mb.messages[id]
		b.WriteString("<uncommittedMessages>" + field("messageID", id) +
			field("osciDate", m.OSCIDate.Format("2006-01-02T15:04:05.000Z07:00")) + "</uncommittedMessages>")
	}
	respond(w, op, field("count", fmt.Sprint(n))+b.String()+field("returnCode", "OK"))
}

func (s *Server) receive(w http.ResponseWriter, req request) {
	const op = "receiveMessage"
	mb := s.mailbox(w, op, req)
	if mb == nil {
		return
	}
	var m Message
	var ok bool
	if req.MessageID != nil {
		m, ok = mb.messages[*req.MessageID]
	} else {
		// Without an id the service hands out the oldest uncommitted message.
		for _, id := range mb.order {
			if !mb.committed[id] {
				m, ok = mb.messages[id], true
				break
			}
		}
	}
	if !ok {
		respond(w, op, field("returnCode", "NO_SUCH_MESSAGE"))
		return
	}
	mb.receives[m.ID]++
	// The ZIP is encoded as it is written, so that serving a large message costs the
	// stand-in no copy of it.
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="`+envelopeNS+`"><soap:Body>`+
		`<ns2:`+op+`Response xmlns:ns2="`+serviceNS+`">`+field("messageID", m.ID)+"<messageZIP>")
	enc := base64.NewEncoder(base64.StdEncoding, w)
	_, _ = enc.Write(m.ZIP)
	_ = enc.Close()
	_, _ = io.WriteString(w, "</messageZIP>"+field("returnCode", "OK")+`</ns2:`+op+`Response></soap:Body></soap:Envelope>`)
}

func (s *Server) commit(w http.ResponseWriter, req request) {
	const op = "commitReceivedMessage"
	mb := s.mailbox(w, op, req)
	if mb == nil {
		return
	}
	user := field("userID", *req.UserID)
	if req.MessageID == nil || *req.MessageID == "" {
		respond(w, op, user+field("returnCode", "MESSAGEID_REQUIRED"))
		return
	}
	id := *req.MessageID
	switch _, known := mb.messages[id]; {
	case !known:
		respond(w, op, user+field("messageID", id)+field("returnCode", "NO_SUCH_MESSAGE"))
	case mb.committed[id]:
		respond(w, op, user+field("messageID", id)+field("returnCode", "MESSAGE_ALREADY_COMMITTED"))
	case mb.receives[id] == 0:
		// Enterprise commits only what was received.
		respond(w, op, user+field("messageID", id)+field("returnCode", "MESSAGE_NOT_PROCESSED"))
	default:
		mb.committed[id] = true
		respond(w, op, user+field("messageID", id)+field("returnCode", "OK"))
	}
}

func (s *Server) send(w http.ResponseWriter, req request) {
	const op = "sendAsynchroniousMessage"
	if s.mailbox(w, op, req) == nil {
		return
	}
	switch {
	case req.ReceiverID == "":
		respond(w, op, field("returnCode", "RECEIVER_REQUIRED"))
		return
	case req.Subject == "":
		respond(w, op, field("returnCode", "SUBJECT_REQUIRED"))
		return
	case req.MessageType == "":
		respond(w, op, field("returnCode", "MESSAGE_TYPE_REQUIRED"))
		return
	case req.ReceiverKey != "USER_ID" && req.ReceiverKey != "ROLE":
		respond(w, op, field("returnCode", "UNSUPPORTED_RECEIVER_TYPE"))
		return
	}
	sent := Sent{UserID: *req.UserID, MessageType: req.MessageType, ReceiverID: req.ReceiverID, ReceiverKey: req.ReceiverKey,
		Subject: req.Subject, SignMessage: req.SignMessage == "true"}
	var err error
	if sent.VisualXML, err = base64.StdEncoding.DecodeString(req.VisualXML); err != nil {
		fault(w, "soap:Client", "visualXML: "+err.Error())
		return
	}
	if sent.VisualXSL, err = base64.StdEncoding.DecodeString(req.VisualXSL); err != nil {
		fault(w, "soap:Client", "visualXSL: "+err.Error())
		return
	}
	for _, a := range req.Attachments {
		data, err := base64.StdEncoding.DecodeString(a.Data)
		if err != nil || a.Name == "" {
			respond(w, op, field("returnCode", "ATTACHMENT_NAME_NOT_FOUND"))
			return
		}
		sent.Attachments = append(sent.Attachments, Attachment{Name: a.Name, Data: data})
	}
	s.seq++
	sent.CustomID = fmt.Sprintf("standin-%d", s.seq)
	s.sent = append(s.sent, sent)
	st := s.sendState
	if st == "" {
		st = "OSCI_SENT"
	}
	if s.states == nil {
		s.states = map[string]string{}
	}
	s.states[sent.CustomID] = st
	respond(w, op, field("customID", sent.CustomID)+field("returnCode", "OK"))
}

// SetSendState makes the messages sent from now on take state (a JEntryTypeType:
// OSCI_SENT, the default, WS_ASEND, WS_UNSENDABLE, ...), as getState reports it.
func (s *Server) SetSendState(state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendState = state
}

// SetState changes the state of a message sent before (by its customID), as
// Enterprise's journal moves on: WS_ASEND to OSCI_SENT, say.
func (s *Server) SetState(customID, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[string]string{}
	}
	s.states[customID] = state
}

// StateRequests counts the getState requests so far.
func (s *Server) StateRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Operation == "getState" {
			n++
		}
	}
	return n
}

// StateTime is the time getState reports for every state.
const StateTime = "2026-02-04T08:00:05.000Z"

func (s *Server) state(w http.ResponseWriter, req request) {
	const op = "getState"
	if s.mailbox(w, op, req) == nil {
		return
	}
	if req.CustomOrID == "" {
		respond(w, op, field("returnCode", "MESSAGE_OR_CUSTOM_ID_REQUIRED"))
		return
	}
	st, ok := s.states[req.CustomOrID]
	if !ok {
		respond(w, op, field("returnCode", "NO_SUCH_MESSAGE_OR_CUSTOM_ID"))
		return
	}
	respond(w, op, field("customID", req.CustomOrID)+field("state", st)+
		field("time", StateTime)+field("returnCode", "OK"))
}

func field(name, value string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(value))
	return "<" + name + ">" + b.String() + "</" + name + ">"
}

func respond(w http.ResponseWriter, op, fields string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="`+envelopeNS+`"><soap:Body>`+
		`<ns2:`+op+`Response xmlns:ns2="`+serviceNS+`">`+fields+`</ns2:`+op+`Response></soap:Body></soap:Envelope>`)
}

func fault(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="`+envelopeNS+`"><soap:Body>`+
		`<soap:Fault>`+field("faultcode", code)+field("faultstring", msg)+`</soap:Fault></soap:Body></soap:Envelope>`)
}
