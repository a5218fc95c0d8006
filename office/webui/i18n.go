package webui

import (
	"net/http"
	"time"

	"golang.org/x/text/language"
)

// Languages the UI speaks, the first the default.
var languages = []language.Tag{language.German, language.English}

var langMatcher = language.NewMatcher(languages)

// lang picks the UI language: the lang cookie the switch sets, else the
// browser's Accept-Language, else German.
func lang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "de" || c.Value == "en") {
		return c.Value
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := langMatcher.Match(tags...)
	if i == 1 {
		return "en"
	}
	return "de"
}

// translate looks a key up in the catalogue; a missing key shows itself,
// and TestCatalogueComplete fails on it.
func translate(l, key string) string {
	m, ok := catalogue[key]
	if !ok {
		return key
	}
	if l == "en" {
		return m[1]
	}
	return m[0]
}

func formatTime(l string, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	t = t.Local()
	if l == "en" {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("02.01.2006 15:04:05")
}

// catalogue holds every text of the UI: German, English.
var catalogue = map[string][2]string{
	"app":                    {"Poststelle", "Poststelle"},
	"skip":                   {"Zum Inhalt springen", "Skip to content"},
	"nav.overview":           {"Übersicht", "Overview"},
	"nav.triage":             {"Triage", "Triage"},
	"nav.search":             {"Suche", "Search"},
	"nav.offices":            {"Fachbereiche", "Offices"},
	"nav.audit":              {"Prüfung", "Audit"},
	"nav.logout":             {"Abmelden", "Log out"},
	"nav.language":           {"English", "Deutsch"},
	"nav.signedin":           {"Angemeldet als", "Signed in as"},
	"role.office":            {"Fachbereich", "office member"},
	"role.mailroom":          {"Poststelle", "mailroom"},
	"role.admin":             {"Administration", "admin"},
	"role.auditor":           {"Prüfer", "auditor"},
	"login.title":            {"Anmeldung", "Log in"},
	"login.user":             {"Benutzername", "User name"},
	"login.password":         {"Passwort", "Password"},
	"login.submit":           {"Anmelden", "Log in"},
	"login.failed":           {"Benutzername oder Passwort ist falsch.", "Wrong user name or password."},
	"login.with":             {"Anmelden mit", "Log in with"},
	"login.oidc_failed":      {"Die Anmeldung beim Identitätsanbieter ist fehlgeschlagen.", "Login at the identity provider failed."},
	"login.oidc_unknown":     {"Dieser Benutzer ist in der Poststelle nicht eingerichtet.", "This user is not set up in Poststelle."},
	"login.oidc_unavailable": {"Der Identitätsanbieter ist nicht erreichbar.", "The identity provider cannot be reached."},
	"login.locked":           {"Zu viele Fehlversuche. Bitte später erneut versuchen.", "Too many failed attempts. Please try again later."},
	"overview.title":         {"Übersicht", "Overview"},
	"overview.perchannel":    {"Eingänge je Kanal (14 Tage)", "Messages per channel (14 days)"},
	"overview.peroffice":     {"Eingänge je Fachbereich (14 Tage)", "Messages per office (14 days)"},
	"overview.queues":        {"Offene Eingänge je Fachbereich", "Open messages per office"},
	"overview.answers":       {"Antworten", "Answers"},
	"overview.verify":        {"Prüfergebnisse der Signaturen", "Signature verification outcomes"},
	"overview.integrity":     {"Integrität des Protokolls", "Log integrity"},
	"overview.head":          {"Zuletzt bezeugter Stand", "Last witnessed head"},
	"overview.latest":        {"Neueste Eingänge", "Latest messages"},
	"overview.triage":        {"Offen in der Triage", "Open in triage"},
	"overview.nohead":        {"Noch kein Stand an Zeugen übergeben.", "No head handed to witnesses yet."},
	"overview.witnesses":     {"Zeugen", "Witnesses"},
	"overview.chart":         {"Balkendiagramm", "Bar chart"},
	"integrity.ok":           {"intakt", "intact"},
	"integrity.broken":       {"GEBROCHEN", "BROKEN"},
	"integrity.pending":      {"noch nicht geprüft", "not checked yet"},
	"integrity.error":        {"nicht prüfbar", "could not be checked"},
	"integrity.events":       {"Ereignisse", "events"},
	"integrity.checked":      {"geprüft", "checked"},
	"col.received":           {"Eingang", "Received"},
	"col.channel":            {"Kanal", "Channel"},
	"col.sender":             {"Absender", "Sender"},
	"col.subject":            {"Betreff", "Subject"},
	"col.office":             {"Fachbereich", "Office"},
	"col.offices":            {"Fachbereiche", "Offices"},
	"col.status":             {"Status", "Status"},
	"col.verification":       {"Signaturprüfung", "Verification"},
	"col.count":              {"Anzahl", "Count"},
	"col.state":              {"Zustand", "State"},
	"col.kind":               {"Art", "Kind"},
	"col.reason":             {"Grund", "Reason"},
	"col.since":              {"Seit", "Since"},
	"col.filenumbers":        {"Aktenzeichen", "File numbers"},
	"col.time":               {"Zeit", "Time"},
	"col.event":              {"Ereignis", "Event"},
	"col.detail":             {"Einzelheiten", "Details"},
	"col.by":                 {"Durch", "By"},
	"col.day":                {"Tag", "Day"},
	"status.received":        {"eingegangen", "received"},
	"status.triage":          {"Triage", "triage"},
	"status.routed":          {"zugeordnet", "routed"},
	"status.delivered":       {"zugestellt", "delivered"},
	"status.acknowledged":    {"übernommen", "acknowledged"},
	"status.answer-pending":  {"Antwort unterwegs", "answer pending"},
	"status.answered":        {"beantwortet", "answered"},
	"status.answer-failed":   {"Antwort gescheitert", "answer failed"},
	"status.new":             {"neu", "new"},
	"verify.pending":         {"ausstehend", "pending"},
	"verify.unsigned":        {"nicht signiert", "unsigned"},
	"verify.passed":          {"gültig", "passed"},
	"verify.failed":          {"ungültig", "failed"},
	"verify.indeterminate":   {"unbestimmt", "indeterminate"},
	"reply.requested":        {"angefordert", "requested"},
	"reply.retrying":         {"wird wiederholt", "retrying"},
	"reply.sent":             {"gesendet", "sent"},
	"reply.failed":           {"gescheitert", "failed"},
	"triage.title":           {"Triage", "Triage"},
	"triage.open":            {"Nicht zuzuordnen oder gescheitert", "Unroutable or failed"},
	"triage.unverifiable":    {"Signaturprüfung nicht bestanden", "Failed or indeterminate verification"},
	"triage.none":            {"Nichts offen.", "Nothing open."},
	"triage.assign":          {"Zuordnen an", "Route to"},
	"triage.reason":          {"Begründung", "Reason"},
	"triage.route":           {"Zuordnen", "Route"},
	"triage.routed":          {"Zugeordnet.", "Routed."},
	"triage.needreason":      {"Bitte Fachbereich und Begründung angeben.", "Choose an office and give a reason."},
	"triage.already":         {"Diese Nachricht wurde bereits zugeordnet.", "This message was routed already."},
	"kind.routing":           {"keine Regel", "no rule"},
	"kind.processing":        {"Verarbeitung gescheitert", "processing failed"},
	"kind.reply":             {"Antwort gescheitert", "answer failed"},
	"kind.webhook":           {"Webhook gescheitert", "webhook failed"},
	"kind.evidence":          {"Nachweis ohne Nachricht", "evidence without message"},
	"kind.eeb-overdue":       {"eEB überfällig", "eEB overdue"},
	"kind.reply-uncertain":   {"Antwort vielleicht gesendet", "answer may have been sent"},
	"note.title":             {"Vermerke", "Notes"},
	"note.text":              {"Vermerk", "Note"},
	"note.add":               {"Vermerk speichern", "Add note"},
	"note.added":             {"Vermerk gespeichert.", "Note added."},
	"message.title":          {"Nachricht", "Message"},
	"message.envelope":       {"Umschlag", "Envelope"},
	"message.from":           {"Von", "From"},
	"message.to":             {"An", "To"},
	"message.cc":             {"Kopie", "Cc"},
	"message.senderid":       {"Kennung des Absenders", "Sender's message id"},
	"message.transport":      {"Transportnachweis", "Transport evidence"},
	"message.remote":         {"Gegenstelle", "Remote address"},
	"message.tls":            {"TLS", "TLS"},
	"message.coordinates":    {"Koordinaten", "Coordinates"},
	"message.trace":          {"Received-Kette", "Received trace"},
	"message.demail":         {"De-Mail-Nachweise", "De-Mail evidence"},
	"message.parts":          {"Bestandteile", "Parts"},
	"message.download":       {"Herunterladen", "Download"},
	"message.raw":            {"Originalnachricht (.eml)", "Original message (.eml)"},
	"message.bundle":         {"Beweispaket (ASiC-E)", "Evidence bundle (ASiC-E)"},
	"message.bundle.title":   {"Eine Datei, die Eingang, Prüfung und Verlauf belegt, ohne Poststelle prüfbar", "One file that proves receipt, verification and history, checkable without Poststelle"},
	"message.report":         {"Prüfprotokoll", "Prüfprotokoll (verification report)"},
	"message.reportopen":     {"Prüfprotokoll öffnen", "Open the Prüfprotokoll"},
	"message.reportjson":     {"Bericht (JSON)", "Report (JSON)"},
	"message.noreport":       {"Die Signaturen sind noch nicht geprüft.", "The signatures have not been verified yet."},
	"message.writtenform":    {"Schriftform", "Written form"},
	"message.evidence":       {"Zustellnachweise", "Delivery evidence"},
	"message.timeline":       {"Verlauf", "Timeline"},
	"message.answers":        {"Antworten", "Answers"},
	"message.answer":         {"Antworten auf dem Kanal des Absenders", "Answer on the sender's channel"},
	"message.answersubject":  {"Betreff (leer: Re: …)", "Subject (empty: Re: …)"},
	"message.answertext":     {"Text", "Text"},
	"message.attachments":    {"Anlagen", "Attachments"},
	"message.send":           {"Antwort senden", "Send answer"},
	"message.sent":           {"Antwort aufgenommen, sie wird gesendet.", "Answer recorded; it is being sent."},
	"message.ack":            {"Übernehmen", "Acknowledge"},
	"message.acked":          {"Übernommen.", "Acknowledged."},
	"message.proof":          {"Nachweis exportieren (log prove)", "Export the proof (log prove)"},
	"message.yes":            {"ja", "yes"},
	"message.no":             {"nein", "no"},
	"message.problems":       {"Auffälligkeiten", "Problems"},
	"message.none":           {"keine", "none"},
	"message.size":           {"Größe", "Size"},
	"message.type":           {"Typ", "Type"},
	"message.name":           {"Name", "Name"},
	"message.notext":         {"Die Antwort braucht einen Text.", "The answer needs a text."},
	"offices.title":          {"Fachbereiche", "Offices"},
	"office.queue":           {"Eingänge", "Queue"},
	"office.empty":           {"Keine Nachrichten.", "No messages."},
	"search.title":           {"Suche", "Search"},
	"search.text":            {"Freitext", "Any text"},
	"search.filenumber":      {"Aktenzeichen", "File number"},
	"search.from":            {"Eingang ab", "Received from"},
	"search.to":              {"Eingang bis", "Received until"},
	"search.any":             {"alle", "any"},
	"search.hint":            {"Ganze Wörter; mit * am Ende auch Wortanfänge (Antr*). Absender und Aktenzeichen: auch Anfänge.", "Whole words; end one with * for a prefix (appl*). Sender and file number: prefixes too."},
	"search.submit":          {"Suchen", "Search"},
	"search.results":         {"Treffer", "Results"},
	"search.none":            {"Keine Treffer.", "No results."},
	"search.baddate":         {"Datum bitte als JJJJ-MM-TT.", "Dates as YYYY-MM-DD, please."},
	"audit.title":            {"Prüfansicht", "Auditor view"},
	"audit.readonly":         {"Nur lesend: diese Ansicht ändert nichts.", "Read-only: nothing here changes anything."},
	"audit.checkpoints":      {"Signierte Prüfpunkte", "Signed checkpoints"},
	"audit.partition":        {"Partition", "Partition"},
	"audit.size":             {"Ereignisse", "Events"},
	"audit.verify":           {"Jetzt prüfen", "Verify now"},
	"error.forbidden":        {"Dafür fehlt die Berechtigung.", "You are not allowed to do this."},
	"error.notfound":         {"Nicht gefunden.", "Not found."},
	"error.erased":           {"Der Inhalt wurde nach Ablauf der Aufbewahrungsfrist gelöscht; die Ereignisse und der Nachweis bleiben.", "The content was erased at the end of its retention period; the events and the evidence remain."},
	"error.csrf":             {"Das Formular ist abgelaufen. Bitte neu laden.", "The form has expired. Please reload."},
	"error.internal":         {"Interner Fehler.", "Internal error."},
	"error.bad":              {"Ungültige Eingabe.", "Invalid input."},
	"error.title":            {"Fehler", "Error"},
	"live.on":                {"Live", "Live"},
	"eeb.title":              {"Elektronisches Empfangsbekenntnis (eEB)", "Electronic acknowledgement of receipt (eEB)"},
	"eeb.explain":            {"Das Gericht bittet um ein Empfangsbekenntnis (§ 173 Abs. 3 ZPO). Die Frist ist die interne der Behörde, nicht die des Gerichts.", "The court asks for an acknowledgement of receipt (§ 173 Abs. 3 ZPO). The due date is the authority's own, not the court's."},
	"eeb.tasks":              {"Offene Empfangsbekenntnisse", "Open eEB requests"},
	"eeb.status":             {"Stand", "Status"},
	"eeb.due":                {"fällig", "due"},
	"eeb.documents":          {"Dokumente", "Documents"},
	"eeb.decision":           {"Entscheidung", "Decision"},
	"eeb.sentat":             {"gesendet", "sent"},
	"eeb.error":              {"Fehler", "Error"},
	"eeb.open":               {"offen", "open"},
	"eeb.answering":          {"wird gesendet", "being sent"},
	"eeb.sent":               {"gesendet", "sent"},
	"eeb.failed":             {"gescheitert – erneut beantworten", "failed – answer again"},
	"eeb.acknowledged":       {"bestätigt", "acknowledged"},
	"eeb.refused":            {"abgelehnt", "refused"},
	"eeb.acknowledge":        {"Empfang bestätigen", "Acknowledge receipt"},
	"eeb.refuse":             {"Ablehnen", "Refuse"},
	"eeb.receivedon":         {"Empfangen am (bei Bestätigung)", "Received on (to acknowledge)"},
	"eeb.code":               {"Grund (bei Ablehnung)", "Reason (to refuse)"},
	"eeb.code1":              {"Zustellungsempfänger nicht am Verfahren beteiligt", "Recipient not party to the proceedings"},
	"eeb.code2":              {"Inhalt der Sendung unklar oder unvollständig", "Content unclear or incomplete"},
	"eeb.code3":              {"Signaturprüfung der übermittelten Dokumente fehlgeschlagen", "Signature check of the documents failed"},
	"eeb.reason":             {"Erläuterung (optional)", "Explanation (optional)"},
	"eeb.norefusal":          {"Die Anfrage ist XJustiz 2.x: sie kann nur bestätigt werden.", "The request is XJustiz 2.x: it can only be acknowledged."},
	"eeb.deviating":          {"Abweichender Zustellungsempfänger (Vertreter)", "Answered by a representative"},
	"eeb.submit":             {"Empfangsbekenntnis senden", "Send the eEB"},
	"eeb.recorded":           {"Empfangsbekenntnis aufgenommen, es wird an das Gericht gesendet.", "eEB recorded; it is being sent to the court."},
	"eeb.notrecorded":        {"Das Empfangsbekenntnis wurde nicht aufgenommen.", "The eEB was not recorded."},
	"erased.on":              {"Inhalt gelöscht am", "Content erased on"},
	"erased.rule":            {"Regel", "rule"},
	"erased.reason":          {"Grund", "reason"},
	"erased.remain":          {"Die Ereignisse, ihre Prüfsummen und die Nachweise bleiben.", "The events, their checksums and the evidence remain."},
	"erased.short":           {"gelöscht", "erased"},
	"hold.since":             {"Sperrvermerk seit", "Legal hold since"},
	"hold.case":              {"Aktenzeichen", "case"},
	"hold.explain":           {"Solange er besteht, wird der Inhalt nicht gelöscht.", "The content is not erased while it lasts."},
	"hold.short":             {"Sperrvermerk", "legal hold"},
}
