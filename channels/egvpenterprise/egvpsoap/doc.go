// Package egvpsoap is a client of the EGVP Enterprise web service (Governikus'
// receiver and sender for EGVP, WSDL testdata/egvp/EgvpEnterpriseSoap/EgvpService.wsdl,
// target namespace urn:de:bos-bremen:egvp:ws): the four operations a mailroom needs,
// getUncommittedMessageIDs, receiveMessage, commitReceivedMessage and
// sendAsynchroniousMessage.
//
// The WSDL binds the port type with SOAP 1.1 (soap:binding, document/literal, one
// soapAction per operation) over HTTP; it has no SOAP 1.2 binding and no policy, so
// no MTOM and no WS-Security: binary fields (messageZIP, attachments' data) travel as
// inline xs:base64Binary, and authentication, where a site puts the service behind
// one, is HTTP's (Basic) and TLS's. The schema's local elements are unqualified (no
// elementFormDefault), so only the operation's element is in the target namespace.
//
// Responses are hostile input: the body is read up to Client.MaxResponseBytes and
// refused beyond it (receiveMessage's messageZIP streams out of it into a writer,
// ReceiveMessageTo, and is never held in memory), parsed strictly (the SOAP 1.1 envelope, one body element, the
// operation's response or a Fault; no DTD), SOAP faults are returned as *Fault and
// return codes other than OK as *ReturnCodeError. A response of a multipart type
// (MTOM/XOP, SwA) is refused with ErrMultipart: the WSDL does not use them.
package egvpsoap
