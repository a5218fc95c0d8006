package osci

import (
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// MessageType names an OSCI 1.2 message by the local name of its request or response
// element (OSCI 1.2 §5).
type MessageType string

// The message types of OSCI 1.2, and the transport-encrypted form.
const (
	InitDialog                 MessageType = "initDialog"
	ResponseToInitDialog       MessageType = "responseToInitDialog"
	ExitDialog                 MessageType = "exitDialog"
	ResponseToExitDialog       MessageType = "responseToExitDialog"
	GetMessageID               MessageType = "getMessageId"
	ResponseToGetMessageID     MessageType = "responseToGetMessageId"
	StoreDelivery              MessageType = "storeDelivery"
	ResponseToStoreDelivery    MessageType = "responseToStoreDelivery"
	FetchDelivery              MessageType = "fetchDelivery"
	ResponseToFetchDelivery    MessageType = "responseToFetchDelivery"
	FetchProcessCard           MessageType = "fetchProcessCard"
	ResponseToFetchProcessCard MessageType = "responseToFetchProcessCard"
	ForwardDelivery            MessageType = "forwardDelivery"
	ResponseToForwardDelivery  MessageType = "responseToForwardDelivery"
	AcceptDelivery             MessageType = "acceptDelivery"
	ResponseToAcceptDelivery   MessageType = "responseToAcceptDelivery"
	ProcessDelivery            MessageType = "processDelivery"
	ResponseToProcessDelivery  MessageType = "responseToProcessDelivery"
	MediateDelivery            MessageType = "mediateDelivery"
	ResponseToMediateDelivery  MessageType = "responseToMediateDelivery"
	// Encrypted is soapMessageEncrypted: the whole message encrypted for the
	// intermediary or the passive recipient; its body is one xenc:EncryptedData.
	Encrypted MessageType = "encrypted"
	// Fault is soapMessageFault: a SOAP fault with the OSCI code of an error that
	// left no room for a signed response (a message that could not be decrypted or
	// parsed).
	Fault MessageType = "fault"
)

// typeInfo says where a message type's element sits and what its body holds.
type typeInfo struct {
	inBody bool // the operation element is the body's child, not a header block
	// body: the body's content when the operation is a header block.
	content  bool // an osci:ContentPackage (required unless optional)
	optional bool
	response bool
}

func messageTypeInfo(t MessageType) (typeInfo, bool) {
	switch t {
	case InitDialog, ExitDialog, GetMessageID, FetchProcessCard:
		return typeInfo{inBody: true}, true
	case ResponseToInitDialog, ResponseToExitDialog, ResponseToGetMessageID, ResponseToFetchProcessCard:
		return typeInfo{inBody: true, response: true}, true
	case StoreDelivery, ForwardDelivery, AcceptDelivery, ProcessDelivery, MediateDelivery:
		return typeInfo{content: true}, true
	case FetchDelivery:
		return typeInfo{}, true
	case ResponseToStoreDelivery, ResponseToForwardDelivery, ResponseToAcceptDelivery:
		return typeInfo{response: true}, true
	case ResponseToFetchDelivery, ResponseToMediateDelivery, ResponseToProcessDelivery:
		return typeInfo{content: true, optional: true, response: true}, true
	}
	return typeInfo{}, false
}

// IsResponse reports a supplier's response (signed with SupplierSignature).
func (t MessageType) IsResponse() bool {
	ti, ok := messageTypeInfo(t)
	return ok && ti.response
}

// Envelope is a parsed OSCI SOAP envelope. Elements are kept beside the values read
// from them, so a signature check can tie each value to what the signature covers.
type Envelope struct {
	Doc  *xmldsig.Document
	Type MessageType

	ControlBlock *ControlBlock
	// ClientSignature and SupplierSignature are the header blocks; their ds:Signature
	// is the only element child.
	ClientSignature    *xmldsig.Element
	SupplierSignature  *xmldsig.Element
	DesiredLanguages   *DesiredLanguages
	QualityOfTimestamp []QualityOfTimestamp
	// Operation is the request or response element of Type.
	Operation *Operation
	// Extensions are further osci header blocks of names the specification does not
	// define, read as operations: EGVP exports carry the fetch response that brought the
	// message as responseToFetchGOV2_CE_PROCESSCARD.
	Extensions                  []*Operation
	IntermediaryCertificates    *Certificates
	NonIntermediaryCertificates *Certificates
	// Other are header blocks of other namespaces (e.g. Governikus' custom headers),
	// kept as elements.
	Other []*xmldsig.Element

	Body           *xmldsig.Element
	ContentPackage *ContentPackage
	// EncryptedData is the body of an Encrypted message.
	EncryptedData *xmldsig.Element
	// SOAPFault is the body of a Fault message.
	SOAPFault *SOAPFault

	forSigning bool
}

// ControlBlock is the osci:ControlBlock: the dialog's challenge and response, its
// conversation id and the message's sequence number (OSCI 1.2 §4.3).
type ControlBlock struct {
	Element        *xmldsig.Element
	Response       string
	HasResponse    bool
	Challenge      string
	HasChallenge   bool
	ConversationID string
	SequenceNumber int64
	HasSequence    bool
}

// DesiredLanguages is the client's wish for the language of feedback texts.
type DesiredLanguages struct {
	Element   *xmldsig.Element
	Languages []string
}

// QualityOfTimestamp asks for plain or cryptographic timestamps on creation (the
// intermediary's receipt of the delivery) or reception (the recipient's fetch).
type QualityOfTimestamp struct {
	Element *xmldsig.Element
	// Service is "creation" or "reception", Quality "plain" or "cryptographic".
	Service, Quality string
}

// Operation is the request or response element of a message (storeDelivery,
// responseToFetchDelivery, ...) with what OSCI defines inside such elements.
type Operation struct {
	Element *xmldsig.Element
	Name    string
	// Feedback is the supplier's feedback of a response.
	Feedback []FeedbackEntry
	// MessageID and Subject of store, forward, mediate, getMessageId and process
	// responses.
	MessageID string
	Subject   string
	// ContentReceiver is the URI of the recipient in forward and mediate requests.
	ContentReceiver string
	// Selection is the selection rule of fetch requests, echoed in their responses.
	Selection *Selection
	// Quantity limits the process cards of fetchProcessCard (0: no limit given).
	Quantity int64
	// ProcessCards are the bundles in the element.
	ProcessCards []ProcessCardBundle
	// MessageIDResponse is processDelivery's request for a message id for a reply.
	MessageIDResponse bool
}

// Selection is an osci:SelectionRule.
type Selection struct {
	MessageIDs          []string
	ReceptionOfDelivery string
	RecentModification  string
	// NoReception and Role qualify the dates of fetchProcessCard.
	NoReception string
	Role        string
}

// Certificates is an IntermediaryCertificates or NonIntermediaryCertificates block.
type Certificates struct {
	Element *xmldsig.Element
	Entries []CertificateEntry
}

// CertificateEntry is one certificate with its role (the element's local name, such as
// CipherCertificateAddressee or SignatureCertificateOriginator) and Id, by which
// signatures' RetrievalMethod and encryption point at it.
type CertificateEntry struct {
	Element *xmldsig.Element
	Role    string
	ID      string
	Cert    *cert.Certificate
}

// Role returns the entries of a role.
func (c *Certificates) Role(role string) []CertificateEntry {
	if c == nil {
		return nil
	}
	var out []CertificateEntry
	for _, e := range c.Entries {
		if e.Role == role {
			out = append(out, e)
		}
	}
	return out
}

// ProcessCards returns every process card bundle of the envelope, operation and
// extensions, in document order.
func (env *Envelope) ProcessCards() []ProcessCardBundle {
	var out []ProcessCardBundle
	if env.Operation != nil {
		out = append(out, env.Operation.ProcessCards...)
	}
	for _, x := range env.Extensions {
		out = append(out, x.ProcessCards...)
	}
	return out
}

// Feedback returns the operation's feedback (nil for requests).
func (env *Envelope) Feedback() []FeedbackEntry {
	if env.Operation == nil {
		return nil
	}
	return env.Operation.Feedback
}

// ParseEnvelope parses and checks the structure of an OSCI SOAP envelope: the header
// blocks in the order and number the schemas allow, the operation, the body. It checks
// no signature; VerifySignature does.
func ParseEnvelope(data []byte, lim Limits) (*Envelope, error) {
	return parseEnvelope(data, lim, false)
}

// parseEnvelope with forSigning accepts the empty signature block SignEnvelope fills.
func parseEnvelope(data []byte, lim Limits, forSigning bool) (*Envelope, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope of %d bytes", ErrTooLarge, len(data))
	}
	doc, err := xmldsig.Parse(data, lim.XML)
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrFormat, err)
	}
	if err := uniqueIDs(doc); err != nil {
		return nil, err
	}
	root := doc.Root
	if !root.Is(NamespaceSOAP, "Envelope") {
		return nil, formatErr("document element <%s> is not soap:Envelope", root.Local)
	}
	kids, err := onlyElements(root)
	if err != nil {
		return nil, err
	}
	env := &Envelope{Doc: doc, forSigning: forSigning}
	switch {
	case len(kids) == 1 && kids[0].Is(NamespaceSOAP, "Body"):
		return env, env.readEncrypted(kids[0])
	case len(kids) == 2 && kids[0].Is(NamespaceSOAP, "Header") && kids[1].Is(NamespaceSOAP, "Body"):
	default:
		return nil, formatErr("soap:Envelope must hold Header and Body")
	}
	if err := env.readHeader(kids[0]); err != nil {
		return nil, err
	}
	if err := env.readBody(kids[1]); err != nil {
		return nil, err
	}
	return env, env.checkType()
}

// uniqueIDs refuses a document in which two elements carry one Id: a reference to it
// could be resolved to either, which is the lever of signature wrapping.
func uniqueIDs(doc *xmldsig.Document) error {
	var walk func(e *xmldsig.Element) error
	walk = func(e *xmldsig.Element) error {
		for _, name := range []string{"Id", "ID", "id"} {
			if v, ok := e.Attr(name); ok {
				if _, err := doc.ElementByID(v); err != nil {
					return formatErr("%s %.80q: %v", name, v, err)
				}
			}
		}
		for _, c := range e.Elements() {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(doc.Root)
}

func (env *Envelope) readEncrypted(body *xmldsig.Element) error {
	kids, err := onlyElements(body)
	if err != nil {
		return err
	}
	if len(kids) == 1 && kids[0].Is(NamespaceSOAP, "Fault") {
		env.Type, env.Body = Fault, body
		env.SOAPFault, err = parseFault(kids[0])
		return err
	}
	if len(kids) != 1 || !kids[0].Is(NamespaceXEnc, "EncryptedData") {
		return formatErr("a header-less envelope must be soapMessageEncrypted, one xenc:EncryptedData in the body")
	}
	env.Type, env.Body, env.EncryptedData = Encrypted, body, kids[0]
	return nil
}

func (env *Envelope) readHeader(h *xmldsig.Element) error {
	kids, err := onlyElements(h)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := env.readHeaderBlock(k); err != nil {
			return err
		}
	}
	if env.ControlBlock == nil {
		return formatErr("no osci:ControlBlock")
	}
	return nil
}

func (env *Envelope) readHeaderBlock(k *xmldsig.Element) error {
	if k.Space != NamespaceOSCI {
		env.Other = append(env.Other, k)
		return nil
	}
	once := func(set bool) error {
		if set {
			return formatErr("osci:%s appears twice", k.Local)
		}
		return nil
	}
	var err error
	switch k.Local {
	case "ControlBlock":
		if err = once(env.ControlBlock != nil); err == nil {
			env.ControlBlock, err = parseControlBlock(k)
		}
	case "ClientSignature", "SupplierSignature":
		err = env.readSignatureBlock(k)
	case "DesiredLanguages":
		if err = once(env.DesiredLanguages != nil); err == nil {
			env.DesiredLanguages, err = parseDesiredLanguages(k)
		}
	case "QualityOfTimestamp":
		var q QualityOfTimestamp
		if q, err = parseQualityOfTimestamp(k); err == nil {
			for _, o := range env.QualityOfTimestamp {
				if o.Service == q.Service {
					return formatErr("two osci:QualityOfTimestamp for %s", q.Service)
				}
			}
			env.QualityOfTimestamp = append(env.QualityOfTimestamp, q)
		}
	case "IntermediaryCertificates":
		if err = once(env.IntermediaryCertificates != nil); err == nil {
			env.IntermediaryCertificates, err = parseCertificates(k, intermediaryRoles())
		}
	case "NonIntermediaryCertificates":
		if err = once(env.NonIntermediaryCertificates != nil); err == nil {
			env.NonIntermediaryCertificates, err = parseCertificates(k, nonIntermediaryRoles())
		}
	default:
		err = env.readOperationBlock(k)
	}
	return err
}

func (env *Envelope) readSignatureBlock(k *xmldsig.Element) error {
	if env.ClientSignature != nil || env.SupplierSignature != nil {
		return formatErr("more than one signature header block")
	}
	kids, err := onlyElements(k)
	if err != nil {
		return err
	}
	empty := env.forSigning && len(k.Children) == 0
	if !empty && (len(kids) != 1 || !kids[0].Is(xmldsig.NamespaceDSig, "Signature")) {
		return formatErr("osci:%s must hold one ds:Signature", k.Local)
	}
	if k.Local == "ClientSignature" {
		env.ClientSignature = k
	} else {
		env.SupplierSignature = k
	}
	return nil
}

func (env *Envelope) readOperationBlock(k *xmldsig.Element) error {
	t := MessageType(k.Local)
	if ti, ok := messageTypeInfo(t); ok {
		if ti.inBody {
			return formatErr("osci:%s belongs in the body", k.Local)
		}
		if env.Operation != nil {
			return formatErr("two operations, %s and %s", env.Operation.Name, k.Local)
		}
		op, err := parseOperation(k)
		if err != nil {
			return err
		}
		env.Type, env.Operation = t, op
		return nil
	}
	if len(env.Extensions) == 8 {
		return formatErr("too many unknown osci header blocks")
	}
	op, err := parseOperation(k)
	if err != nil {
		return fmt.Errorf("osci:%s: %w", k.Local, err)
	}
	env.Extensions = append(env.Extensions, op)
	return nil
}

func (env *Envelope) readBody(b *xmldsig.Element) error {
	env.Body = b
	kids, err := onlyElements(b)
	if err != nil {
		return err
	}
	if len(kids) > 1 {
		return formatErr("soap:Body with %d elements", len(kids))
	}
	if len(kids) == 0 {
		return nil
	}
	k := kids[0]
	if isOSCI(k, "ContentPackage") {
		env.ContentPackage, err = parseContentPackage(k)
		return err
	}
	t := MessageType(k.Local)
	ti, ok := messageTypeInfo(t)
	if !isOSCI(k, k.Local) || !ok || !ti.inBody {
		return formatErr("<%s> in soap:Body", k.Local)
	}
	if env.Operation != nil {
		return formatErr("two operations, %s and %s", env.Operation.Name, k.Local)
	}
	env.Operation, err = parseOperation(k)
	env.Type = t
	return err
}

// checkType enforces what the schema of the message type requires beyond the order of
// the blocks: which signature block, which body, which control block values.
func (env *Envelope) checkType() error {
	if env.Operation == nil {
		return formatErr("no OSCI request or response element")
	}
	ti, _ := messageTypeInfo(env.Type)
	switch {
	case ti.content && !ti.optional && env.ContentPackage == nil:
		return formatErr("%s without osci:ContentPackage", env.Type)
	case !ti.content && env.ContentPackage != nil:
		return formatErr("%s with an osci:ContentPackage", env.Type)
	case ti.response && env.ClientSignature != nil:
		return formatErr("%s carries a ClientSignature", env.Type)
	case !ti.response && env.SupplierSignature != nil:
		return formatErr("%s carries a SupplierSignature", env.Type)
	case ti.response && len(env.Operation.Feedback) == 0:
		return formatErr("%s without osci:Feedback", env.Type)
	}
	return nil
}

func parseControlBlock(e *xmldsig.Element) (*ControlBlock, error) {
	cb := &ControlBlock{Element: e}
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	for i, k := range kids {
		switch {
		case isOSCI(k, "Response") && i == 0:
			cb.Response, err = text(k, maxShortText)
			cb.HasResponse = true
		case isOSCI(k, "Challenge") && !cb.HasChallenge:
			cb.Challenge, err = text(k, maxShortText)
			cb.HasChallenge = true
		default:
			return nil, formatErr("<%s> out of place in osci:ControlBlock", k.Local)
		}
		if err != nil {
			return nil, err
		}
	}
	if v, ok := e.Attr("ConversationId"); ok {
		// The schema says osci:Number, but the reference library carries whatever
		// the intermediary issued (the Governikus one sends base64), so any short
		// token is taken; it is only ever compared.
		if v == "" || len(v) > 256 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, formatErr("ConversationId %.40q", v)
		}
		cb.ConversationID = v
	}
	if v, ok := e.Attr("SequenceNumber"); ok {
		if cb.SequenceNumber, err = number(v); err != nil {
			return nil, fmt.Errorf("SequenceNumber: %w", err)
		}
		cb.HasSequence = true
	}
	return cb, nil
}

func parseDesiredLanguages(e *xmldsig.Element) (*DesiredLanguages, error) {
	v, _ := e.Attr("LanguagesList")
	langs := strings.Fields(v)
	if len(langs) == 0 || len(langs) > 16 || len(e.Elements()) > 0 {
		return nil, formatErr("osci:DesiredLanguages %.40q", v)
	}
	return &DesiredLanguages{Element: e, Languages: langs}, nil
}

func parseQualityOfTimestamp(e *xmldsig.Element) (QualityOfTimestamp, error) {
	q := QualityOfTimestamp{Element: e}
	var err error
	if q.Service, err = enumAttr(e, "Service", []string{"creation", "reception"}); err != nil {
		return q, err
	}
	q.Quality, err = enumAttr(e, "Quality", []string{"plain", "cryptographic"})
	return q, err
}

// intermediaryRoles and nonIntermediaryRoles are the certificate roles of each block,
// in schema order.
func intermediaryRoles() []string {
	return []string{"CipherCertificateIntermediary", "SignatureCertificateIntermediary"}
}

func nonIntermediaryRoles() []string {
	return []string{"CipherCertificateOriginator", "CipherCertificateOtherAuthor", "CipherCertificateAddressee", "CipherCertificateOtherReader", "SignatureCertificateOriginator", "SignatureCertificateOtherAuthor", "SignatureCertificateAddressee"}
}

const maxCertificates = 256

func parseCertificates(e *xmldsig.Element, roles []string) (*Certificates, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) > maxCertificates {
		return nil, formatErr("osci:%s with %d certificates", e.Local, len(kids))
	}
	c := &Certificates{Element: e}
	at := 0
	for _, k := range kids {
		for at < len(roles) && !isOSCI(k, roles[at]) {
			at++
		}
		if at == len(roles) {
			return nil, formatErr("<%s> out of place in osci:%s", k.Local, e.Local)
		}
		entry, err := parseCertificateEntry(k)
		if err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, entry)
		if !strings.Contains(roles[at], "Other") {
			at++ // one of each role but the Other* ones
		}
	}
	return c, nil
}

func parseCertificateEntry(k *xmldsig.Element) (CertificateEntry, error) {
	entry := CertificateEntry{Element: k, Role: k.Local, ID: id(k)}
	kids, err := onlyElements(k)
	if err != nil {
		return entry, err
	}
	if len(kids) != 1 || !kids[0].Is(xmldsig.NamespaceDSig, "X509Data") {
		return entry, formatErr("osci:%s must hold one ds:X509Data", k.Local)
	}
	xcs, err := onlyElements(kids[0])
	if err != nil {
		return entry, err
	}
	if len(xcs) != 1 || !xcs[0].Is(xmldsig.NamespaceDSig, "X509Certificate") {
		return entry, formatErr("osci:%s must hold one ds:X509Certificate", k.Local)
	}
	der, err := base64Text(xcs[0], cert.MaxSize)
	if err != nil {
		return entry, err
	}
	if entry.Cert, err = cert.Parse(der); err != nil {
		return entry, fmt.Errorf("%w: osci:%s: %v", ErrFormat, k.Local, err)
	}
	return entry, nil
}
