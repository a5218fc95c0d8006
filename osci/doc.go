// Package osci reads and writes OSCI-Transport 1.2 messages (KoSIT, "OSCI-Transport 1.2
// Spezifikation"), the protocol EGVP and beBPo ride on: the MIME Multipart/Related framing,
// the SOAP envelope with its ControlBlock, client and supplier signatures, certificates and
// the request or response of each message type, the ContentPackage with its content
// containers and attachments, process cards, feedback codes and SOAP faults.
//
// The package serves both sides of a dialog: a client (sender or recipient) reads the
// intermediary's responses and the deliveries in them, the intermediary reads requests
// and passes deliveries on. It does no networking and keeps no state between messages;
// the dialog rules (challenge and response, sequence numbers, mailboxes, message ids)
// belong to its callers.
//
// Receiving, as the intermediary or a passive recipient does with a request:
//
//	outer, _ := osci.ReadMessage(ctx, httpBody, lim, spool)   // the library puts the MIME headers into the HTTP body
//	oenv, _ := osci.ParseEnvelope(outer.Envelope, lim)         // Type Encrypted
//	m, _, _ := osci.DecryptTransport(ctx, oenv, outer, myCipherKey, lim, spool)
//	env, _ := osci.ParseEnvelope(m.Envelope, lim)              // Type StoreDelivery, ...
//	chk, _ := env.VerifySignature(ctx, m)                      // chk.Valid(), chk.Code() for the feedback
//	dc, _ := osci.DecryptContainer(ctx, env.ContentPackage.Encrypted[0], m, readerKey, lim, spool)
//	checks, _ := osci.VerifyContainer(ctx, dc.Doc, dc.Container, certBlocks, func(cid string) *osci.Part { return dc.Attachments[cid] })
//
// Sending: ComposeEnvelope with Message.Signed, SignEnvelope, WriteMessage for the inner
// message, then Encryptor.EncryptTransport for the recipient of the transport
// (EncryptContainer and SignContainer make the content first). Errors wrap ErrFormat
// (9100), ErrTooLarge (9904), ErrDecrypt (9202), ErrSignatureInvalid (9601) and
// ErrNotSigned (9602), so that a caller can answer with the right feedback Code.
//
// Everything read is hostile until checked: the framing is capped in size, part count and
// header size, attachments stream to a caller's Spool instead of memory, the envelope is
// parsed by crypto/xmldsig's strict DOM (no DTDs, depth and node caps, duplicate Ids
// refused), a signature counts only for the elements it references by Id at the
// positions this package reads them from, and decrypted data is kept only once its GCM
// tag has checked.
package osci
