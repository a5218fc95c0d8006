// Package xjustiz reads the XJustiz message an EGVP delivery carries as
// xjustiz_nachricht.xml (the Nachrichtenkopf every XJustiz message starts with, the
// documents it lists with their eEB requests, the fachdaten of a returning eEB) and
// writes the returning eEB, nachricht.eeb.zuruecklaufend.2200007.
//
// XJustiz is published by the Leitstelle XJustiz (xjustiz.de). Two generations are in
// use and both are read:
//
//   - XJustiz 2.x (the samples say xjustizVersion 2.4.0, schemas
//     xjustiz_0005_nachrichten_2_4.xsd and xjustiz_2200_eeb_2_2.xsd): snake-case header
//     elements (absender_Gericht, eigene_Nachrichten_ID, ruecksendung_EEB_erforderlich),
//     the version on grunddaten;
//   - XJustiz 3.x (3.2.1 in a sample, 3.5.1 in the Pflegestelle's eEB tool, schema
//     xjustiz_2200_eeb_3_1.xsd): auswahl_absender/absender.gericht, eigeneNachrichtenID,
//     ruecksendungEEB.erforderlich, the version on nachrichtenkopf;
//   - XJustiz 3.6/3.7 (schema xjustiz_0005_nachrichten_3_2.xsd, Layout LayoutPartner):
//     each side in an absender/empfaenger element with its Kommunikationspartner,
//     Aktenzeichen and message id, read into the same Header fields.
//
// The returning eEB is written in either: 2.4.0 as the real TestnachrichtEeb_1 sample,
// 3.5.1 as the Pflegestelle's tool writes it (fremdeNachrichtenID is the request's
// eigeneNachrichtenID, rule SCH-EEB-0001; the refusal's stoerungsID from the Codeliste
// eeb.stoerungs-id 2.1), and a 3.6/3.7 request's eEB and answer in its layout as 3.6.2,
// which the 3.6.2 and the 3.7.0 schemas both accept (VersionPartner).
//
// A 3.x message of a version whose schema package is followed (3.2.1, 3.4.1, 3.5.1,
// 3.6.2; SchemaVersions) is also checked against tables written from its published XSDs:
// the message's element sequence, the whole Nachrichtenkopf and eEB fachdaten, their
// simple types and XÖV code types (schema.go says what is left out).
//
// Everything read is hostile: the document is parsed by crypto/xmldsig's strict DOM
// (size, depth and node caps, no DTD), and a message that is not what its namespace,
// root element and declared version say is kept with its Problems listed rather than
// refused, so that nothing a court sent is lost.
package xjustiz
