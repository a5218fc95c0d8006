// Package osci reads and writes OSCI-Transport 1.2 messages (KoSIT, "OSCI-Transport 1.2
// Spezifikation"), the protocol EGVP and beBPo ride on: the MIME Multipart/Related framing,
// the SOAP envelope with its ControlBlock, client and supplier signatures, certificates and
// the request or response of each message type, the ContentPackage with its content
// containers and attachments, process cards and feedback codes.
//
// The package serves both sides of a dialog: a client (sender or recipient) reads the
// intermediary's responses and the deliveries in them, the intermediary reads requests.
// It does no networking and keeps no state between messages; the dialog logic (challenge
// and response, sequence numbers, mailboxes) belongs to its callers.
//
// Everything read is hostile until checked: the framing is capped in size, part count and
// header size, attachments stream to a caller's Spool instead of memory, the envelope is
// parsed by crypto/xmldsig's strict DOM (no DTDs, depth and node caps, duplicate Ids
// refused), and a signature counts only for the elements it references by Id at the
// positions this package reads them from.
package osci
