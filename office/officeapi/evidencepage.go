package officeapi

import (
	"bytes"
	"html/template"
	"net/http"
	"time"

	"github.com/poststelle/poststelle/office/httpserve"
)

// evidencePage is the Prüfprotokoll's section on delivery evidence
// (Zustellnachweise): what the channel's provider, intermediary or portal
// attested about the message and its answers, the same table on every
// channel. It is rendered from the read model when asked for, because
// evidence keeps arriving after the message (a retrieval confirmation can
// come weeks later); the signature report beside it is fixed.
var evidencePage = template.Must(template.New("evidence").Funcs(template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
}).Parse(`<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8"><title>Zustellnachweise {{.Stream}}</title></head><body>
<h1>Prüfprotokoll: Zustellnachweise</h1>
<table>
<tr><th>Nachricht</th><td>{{.Stream}}</td></tr>
<tr><th>Kanal</th><td>{{.Channel}}</td></tr>
<tr><th>Eingangszeitpunkt</th><td>{{utc .ReceivedAt}}</td></tr>
<tr><th>Absender</th><td>{{.From.Address}}</td></tr>
<tr><th>Betreff</th><td>{{.Subject}}</td></tr>
<tr><th>Original SHA-256</th><td>{{.Raw.SHA256}}</td></tr>
</table>
{{with .DeMail}}<h2>De-Mail</h2>
<table>
<tr><th>Schriftform durch De-Mail erfüllt</th><td>{{.WrittenForm}}</td></tr>
<tr><th>Absenderbestätigt</th><td>{{.Authoritative}}</td></tr>
<tr><th>Integritätsprüfung</th><td>{{.Verdict}}: {{.VerdictDetail}}</td></tr>
<tr><th>Qualifikation der Provider-Signatur</th><td>{{.Qualification}} {{.QualificationDetail}}</td></tr>
<tr><th>Absender (vom Provider bestätigt)</th><td>{{.Sender}}</td></tr>
<tr><th>Provider</th><td>{{.OriginatorProvider}}</td></tr>
<tr><th>Angeforderte Bestätigungen</th><td>Versand {{.ConfirmDispatch}}, Eingang {{.ConfirmReceipt}}, Abholung {{.ConfirmRetrieval}}</td></tr>
</table>
{{end}}<h2>Zustellnachweise</h2>
{{if not .Evidence}}<p>Keine Zustellnachweise erfasst (no delivery evidence recorded).</p>
{{else}}<table>
<tr><th>Art</th><th>betrifft</th><th>bestätigt durch</th><th>Zeitpunkt laut Nachweis</th><th>erfasst</th><th>Prüfung</th><th>Qualifikation</th><th>verknüpft über</th><th>Probleme</th></tr>
{{range .Evidence}}<tr><td>{{.Kind}}</td><td>{{if .ReplyID}}Antwort {{.ReplyID}}{{else}}Nachricht{{end}}</td><td>{{.Attester.Role}} {{.Attester.Name}}</td><td>{{utc .AttestedAt}}</td><td>{{utc .RecordedAt}}</td><td>{{with .Verification}}{{.Indication}} {{.Detail}}{{end}}</td><td>{{with .Verification}}{{.Qualification}}{{end}}</td><td>{{.LinkedBy}}</td><td>{{range .Problems}}{{.}}<br>{{end}}</td></tr>
{{end}}</table>
{{end}}</body></html>
`))

// evidenceHTML answers the delivery-evidence section of the Prüfprotokoll
// of one message.
func (s *Server) evidenceHTML(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := evidencePage.Execute(&b, m); err != nil {
		s.internal(w, r, "render evidence", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
