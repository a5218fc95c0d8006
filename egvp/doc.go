// Package egvp gives an OSCI delivery its EGVP meaning: the content container
// "project_coco" with the sender's Visitenkarte (visitenkarte.xml), the older message
// description (nachricht.xml), the attachments with their detached signatures and the
// XJustiz message (xjustiz_nachricht.xml), the client's "govello_coco" with its
// additional_infos; from them the typed fields the mailroom routes by (SAFE-IDs of both
// sides, subject, both Aktenzeichen, message type, the court's code, an eEB request),
// and the proof of origin (VHN, vertrauenswürdiger Herkunftsnachweis).
//
// The structure is that of the three real messages an EGVP Enterprise receiver exported
// (testdata/egvp): there is no public specification of the EGVP containers; XJustiz is
// read by package xjustiz.
//
// # Proof of origin
//
// § 130a Abs. 3 Satz 1 Alt. 2, Abs. 4 ZPO: a document signed (simply) by the
// responsible person and sent on a secure route needs no qualified signature; beBPo,
// beA, beN, eBO and the courts' EGVP mailboxes are such routes when the mailbox holder
// is identified in the SAFE directory (ERVV §§ 6-8 for the beBPo). The route is proven
// by the VHN: the sending mailbox signs the OSCI message with a "transport signature"
// whose certificate the Bundesnotarkammer issues to that mailbox once its role
// (egvp_bebpo, ...) is confirmed in SAFE (the beBPo Prüfstellen of the Länder describe
// the procedure: the VHN certificate's login is the mailbox's Nutzer-ID). In the
// samples the certificate is issued by "beBPo VHN CA 2017" or "Justiz VHN CA 2017"
// (O=BNotK), its subject CN is "VHN - <kind of mailbox>", and for a beBPo its UID is the
// mailbox's SAFE-ID; the intermediary checks it and records the check in the process
// card, and the receiver prints "Sicherer Übermittlungsweg aus einem besonderen
// Behördenpostfach." (or "Diese Nachricht wurde von der Justiz versandt.").
//
// Origin.Level is LevelVHN when such a certificate signed the delivery, the
// intermediary's inspection of it is positive, it was valid at receipt and (for a
// mailbox-bound VHN) it names the sender's SAFE-ID; LevelSenderSigned when a transport
// signature is there but is not a VHN or not bound to the sender; LevelNone otherwise.
// A Visitenkarte whose SAFE-ID or role contradicts the certificate is flagged.
package egvp
