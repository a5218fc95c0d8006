package xjustiz

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// The schema tables below are written from the XJustiz schema packages 3.2.1, 3.4.1,
// 3.5.1, 3.6.2 and 3.7.0 of the XJustiz-Pflegestelle (testdata/xjustiz/xsd, provenance in
// testdata/SOURCES.tsv): Type.GDS.Nachrichtenkopf of xjustiz_0000_grunddatensatz_3_2,
// _3_4, _3_5, _3_6 and _3_7.xsd, the message elements of xjustiz_0005_nachrichten_3_0/_3_1/_3_2.xsd,
// Type.EEB.Zuruecklaufend of xjustiz_2200_eeb_3_0/_3_1.xsd, and the code types of
// xjustiz_0010_cl_allgemein, _0020_cl_gerichte and _2210_cl_eeb. TestSchemaTables
// derives the same models from those files and fails when a table strays from them;
// TestSchemaAgainstXmllint compares the verdicts with xmllint's over the real XSDs.
//
// It is not an XSD engine: grunddaten and schriftgutobjekte are required where the
// schema requires them but their content is not checked, nor is the character
// repertoire of the string types (String.Latin, DIN 91379 datatypeC/D).

// unbounded is maxOccurs="unbounded".
const unbounded = -1

type content int

const (
	contentText    content = iota // a simple type
	contentElement                // child elements per model
	contentCode                   // an XÖV code type: an unqualified code child
	contentOpaque                 // present, its content not checked
)

// decl is one element declaration of a content model. A decl with choice set is an
// xs:choice (exactly once) of those alternatives instead of an element.
type decl struct {
	name     string
	min, max int
	kind     content
	simple   *simpleType
	model    []decl
	code     *codeType
	attrs    []attrDecl
	choice   []decl
}

type attrDecl struct {
	name     string
	required bool
	fixed    string
}

// simpleType is the lexical check of an XSD simple type; collapse marks the types
// whose whitespace facet is collapse (everything but xs:string and its kin).
type simpleType struct {
	name     string
	collapse bool
	valid    func(string) bool
}

// codeType is an XÖV code type (xoev-code:Code restricted): one unqualified code
// element, listURI fixed to the Codeliste's URN, listVersionID required (Typ3, the
// version chosen by the sender) or fixed (Typ2, the list is in the schema with
// values).
type codeType struct {
	list            string
	versionRequired bool
	fixedVersion    string
	values          []string
}

var (
	xsString   = &simpleType{name: "string", valid: func(string) bool { return true }}
	xsDateTime = &simpleType{name: "xs:dateTime", collapse: true, valid: validDateTime}
	xsDate     = &simpleType{name: "xs:date", collapse: true, valid: validDate}
	xsBoolean  = &simpleType{name: "xs:boolean", collapse: true, valid: func(s string) bool {
		return s == "true" || s == "false" || s == "1" || s == "0"
	}}
	// xsTrue is an xs:boolean fixed to true (aktenzeichen.neu, .unbekannt): fixed
	// compares values, so "1" is true as well.
	xsTrue = &simpleType{name: "xs:boolean=true", collapse: true, valid: func(s string) bool {
		return s == "true" || s == "1"
	}}
	xsInteger = &simpleType{name: "xs:integer", collapse: true, valid: func(s string) bool {
		return integerPattern.MatchString(s)
	}}
	// Type.GDS.Xdomea.stringUUIDType: the schema's pattern keeps the "|" that its
	// authors meant as alternation inside the brackets, so it accepts "|" too.
	uuidType = &simpleType{name: "Type.GDS.Xdomea.stringUUIDType", valid: func(s string) bool {
		return uuidPattern.MatchString(s)
	}}
)

var (
	integerPattern = regexp.MustCompile(`^[+-]?[0-9]+$`)
	uuidPattern    = regexp.MustCompile(`^[0-9|A-Fa-f]{8}-[0-9|A-Fa-f]{4}-[0-9|A-Fa-f]{4}-[0-9|A-Fa-f]{4}-[0-9|A-Fa-f]{12}$`)
	dateTimeLex    = regexp.MustCompile(`^(-?[0-9]{4,}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?$`)
	dateLex        = regexp.MustCompile(`^(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})(Z|[+-]([0-9]{2}):([0-9]{2}))?$`)
)

func validDateTime(s string) bool {
	g := dateTimeLex.FindStringSubmatch(s)
	if g == nil || !validDate(g[1]+g[7]) {
		return false
	}
	h, _ := strconv.Atoi(g[2])
	m, _ := strconv.Atoi(g[3])
	sec, _ := strconv.Atoi(g[4])
	if h == 24 { // 24:00:00 is the end of the day
		return m == 0 && sec == 0 && strings.Trim(g[6], "0") == ""
	}
	return h < 24 && m < 60 && sec < 60
}

func validDate(s string) bool {
	g := dateLex.FindStringSubmatch(s)
	if g == nil {
		return false
	}
	year, err := strconv.Atoi(g[1])
	if err != nil || year == 0 {
		return false // XSD 1.0 has no year zero
	}
	month, _ := strconv.Atoi(g[2])
	day, _ := strconv.Atoi(g[3])
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return false
	}
	if g[5] != "" {
		th, _ := strconv.Atoi(g[5])
		tm, _ := strconv.Atoi(g[6])
		if tm > 59 || th > 14 || (th == 14 && tm != 0) {
			return false
		}
	}
	return true
}

func daysIn(year, month int) int {
	if year < 0 {
		year++ // XSD 1.0 counts 1 BCE as -0001
	}
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func text(name string, min, max int, t *simpleType) decl {
	return decl{name: name, min: min, max: max, kind: contentText, simple: t}
}

func code(name string, min, max int, c *codeType) decl {
	return decl{name: name, min: min, max: max, kind: contentCode, code: c}
}

func typ3(list string) *codeType {
	return &codeType{list: "urn:xoev-de:xjustiz:codeliste:" + list, versionRequired: true}
}

// The Codelisten embedded in the schemas (Typ2), with their values.
var (
	rvTraeger = &codeType{list: "urn:xoev-de:xjustiz:codeliste:gds.rvtraeger", fixedVersion: "2.0",
		values: []string{"02", "09", "10", "11", "12", "13", "15", "16", "17", "18", "21", "24", "25", "28", "70", "80"}}
	stoerungsID20 = &codeType{list: "urn:xoev-de:xjustiz:codeliste:eeb.stoerungs-id", fixedVersion: "2.0",
		values: []string{RefusalNotParty, RefusalUnclear, RefusalSignatures}}
	stoerungsID21 = &codeType{list: "urn:xoev-de:xjustiz:codeliste:eeb.stoerungs-id", fixedVersion: "2.1",
		values: []string{RefusalNotParty, RefusalUnclear, RefusalSignatures}}
)

// schemaSet is what one XJustiz version's schemas say about the messages read here.
type schemaSet struct {
	version string
	// roots maps a message element to its content model.
	roots map[string][]decl
}

func headerModel3(version string, police, routing, confidentiality bool) decl {
	party := func(prefix string) []decl {
		alts := []decl{
			code(prefix+"gericht", 1, 1, typ3("gds.gerichte")),
			text(prefix+"sonstige", 1, 1, xsString),
			code(prefix+"rvTraeger", 1, 1, rvTraeger),
		}
		if police {
			alts = append(alts, code(prefix+"polizeibehoerde", 1, 1, typ3("gds.polizeibehoerden")))
		}
		return alts
	}
	m := []decl{
		text("aktenzeichen.absender", 0, unbounded, xsString),
		text("aktenzeichen.empfaenger", 0, unbounded, xsString),
		text("erstellungszeitpunkt", 1, 1, xsDateTime),
		{name: "auswahl_absender", min: 1, max: 1, kind: contentElement, model: []decl{{choice: party("absender.")}}},
		{name: "auswahl_empfaenger", min: 1, max: 1, kind: contentElement, model: []decl{{choice: party("empfaenger.")}}},
	}
	if routing {
		m = append(m, text("routingInformationAusSafeverzeichnis.empfaenger", 0, 1, xsString))
	}
	m = append(m,
		text("eigeneNachrichtenID", 1, 1, uuidType),
		text("fremdeNachrichtenID", 0, 1, uuidType),
		decl{name: "nachrichtenuebergreifenderProzess", min: 0, max: 1, kind: contentElement, model: []decl{
			text("prozessID", 1, 1, uuidType),
			text("nachrichtenNummer", 0, 1, xsInteger),
			text("nachrichtenAnzahl", 0, 1, xsInteger),
		}},
		code("ereignis", 0, unbounded, typ3("gds.ereignis")),
		decl{name: "herstellerinformation", min: 0, max: 1, kind: contentElement, model: []decl{
			text("nameDesProdukts", 0, 1, xsString),
			text("herstellerDesProdukts", 0, 1, xsString),
			text("version", 0, 1, xsString),
		}},
		code("sendungsprioritaet", 0, 1, typ3("gds.sendungsprioritaet")),
	)
	if confidentiality {
		m = append(m, decl{name: "vertraulichkeit", min: 0, max: 1, kind: contentElement, model: []decl{
			code("vertraulichkeitsstufe", 1, 1, typ3("gds.vertraulichkeitsstufe")),
			text("vertraulichkeitsgrund", 1, 1, xsString),
		}})
	}
	return decl{name: "nachrichtenkopf", min: 1, max: 1, kind: contentElement, model: m,
		attrs: []attrDecl{{name: "xjustizVersion", required: true, fixed: version}}}
}

// headerModel36 is the Nachrichtenkopf of XJustiz 3.6.2 (and of 3.7.0, whose
// xjustiz_0000_grunddatensatz_3_7.xsd keeps it unchanged, down to xjustizVersion
// fixed "3.6.2"): each side in its own absender/empfaenger element with its
// Type.GDS.Kommunikationspartner, its Aktenzeichen and its message id.
func headerModel36(version string) decl {
	partner := decl{name: "informationen", min: 1, max: 1, kind: contentElement, model: []decl{
		{name: "auswahl_kommunikationspartner", min: 1, max: 1, kind: contentElement, model: []decl{{choice: []decl{
			code("gericht", 1, 1, typ3("gds.gerichte")),
			text("sonstige", 1, 1, xsString),
			code("rvTraeger", 1, 1, rvTraeger),
			code("polizeibehoerde", 1, 1, typ3("gds.polizeibehoerden")),
			code("finanzbehoerde", 1, 1, &codeType{list: "urn:xoev-de:ag-it-standards:codeliste:gds.finanzbehoerden", versionRequired: true}),
		}}}},
		text("routingInformationAusSafeverzeichnis", 0, 1, xsString),
		{name: "auswahl_verweisGrunddaten", min: 0, max: 1, kind: contentElement, model: []decl{{choice: []decl{
			text("ref.instanznummer", 1, 1, xsString),
			{name: "ref.rollennummer", min: 1, max: 1, kind: contentElement, model: []decl{
				text("ref.rollennummer", 1, 1, xsString),
			}},
		}}}},
	}}
	m := []decl{
		text("erstellungszeitpunkt", 1, 1, xsDateTime),
		{name: "absender", min: 1, max: 1, kind: contentElement, model: []decl{
			partner,
			text("aktenzeichen", 0, 1, xsString),
			text("eigeneNachrichtenID", 1, 1, uuidType),
		}},
		{name: "empfaenger", min: 1, max: 1, kind: contentElement, model: []decl{
			partner,
			{name: "auswahl_aktenzeichen", min: 1, max: 1, kind: contentElement, model: []decl{{choice: []decl{
				text("aktenzeichen.freitext", 1, 1, xsString),
				text("aktenzeichen.neu", 1, 1, xsTrue),
				text("aktenzeichen.unbekannt", 1, 1, xsTrue),
			}}}},
			text("fremdeNachrichtenID", 0, 1, uuidType),
		}},
		{name: "nachrichtenuebergreifenderProzess", min: 0, max: 1, kind: contentElement, model: []decl{
			text("prozessID", 1, 1, uuidType),
			text("nachrichtenNummer", 0, 1, xsInteger),
			text("nachrichtenAnzahl", 0, 1, xsInteger),
		}},
		code("ereignis", 0, unbounded, typ3("gds.ereignis")),
		{name: "herstellerinformation", min: 1, max: 1, kind: contentElement, model: []decl{
			text("nameDesProdukts", 1, 1, xsString),
			text("herstellerDesProdukts", 1, 1, xsString),
			text("version", 1, 1, xsString),
		}},
		code("sendungsprioritaet", 0, 1, typ3("gds.sendungsprioritaet")),
		{name: "auswahl_vertraulichkeit", min: 0, max: 1, kind: contentElement, model: []decl{{choice: []decl{
			text("vertraulichZuBehandelnGrund", 1, 1, xsString),
			code("geheimhaltungsgrad", 1, 1, typ3("gds.geheimhaltungsgrad")),
		}}}},
	}
	return decl{name: "nachrichtenkopf", min: 1, max: 1, kind: contentElement, model: m,
		attrs: []attrDecl{{name: "xjustizVersion", required: true, fixed: version}}}
}

func eebFachdaten(stoerung *codeType) decl {
	return decl{name: "fachdaten", min: 1, max: 1, kind: contentElement, model: []decl{
		{choice: []decl{
			text("empfangsbestaetigung", 1, 1, xsDate),
			{name: "stoerungsmeldung", min: 1, max: 1, kind: contentElement, model: []decl{
				code("stoerungsID", 1, 1, stoerung),
				text("stoerungsGrund", 0, 1, xsString),
			}},
		}},
		text("zustellungsempfaenger.abweichend", 0, 1, xsBoolean),
	}}
}

func newSchemaSet(version string, head decl, stoerung *codeType) *schemaSet {
	grunddaten := decl{name: "grunddaten", min: 1, max: 1, kind: contentOpaque}
	optionalGrunddaten := grunddaten
	optionalGrunddaten.min = 0
	return &schemaSet{version: version, roots: map[string][]decl{
		"nachricht.gds.uebermittlungSchriftgutobjekte.0005005": {head, grunddaten,
			{name: "schriftgutobjekte", min: 1, max: 1, kind: contentOpaque}},
		"nachricht.gds.basisnachricht.0005006": {head, optionalGrunddaten},
		"nachricht.eeb.zuruecklaufend.2200007": {head, eebFachdaten(stoerung)},
	}}
}

// schemaSets are the XJustiz versions whose schemas the tables follow.
var schemaSets = map[string]*schemaSet{
	"3.2.1": newSchemaSet("3.2.1", headerModel3("3.2.1", false, false, false), stoerungsID20),
	"3.4.1": newSchemaSet("3.4.1", headerModel3("3.4.1", false, false, true), stoerungsID21),
	"3.5.1": newSchemaSet("3.5.1", headerModel3("3.5.1", true, true, true), stoerungsID21),
	"3.6.2": newSchemaSet("3.6.2", headerModel36("3.6.2"), stoerungsID21),
}

// SchemaVersions are the XJustiz versions whose messages are checked against their
// schema tables.
func SchemaVersions() []string {
	v := make([]string, 0, len(schemaSets))
	for k := range schemaSets {
		v = append(v, k)
	}
	slices.Sort(v)
	return v
}

// validator checks one message against a schema set; its problems name the path.
type validator struct {
	set      *schemaSet
	problems []string
	max      int
}

// maxSchemaProblems bounds the list: a hostile document must not grow it without end.
const maxSchemaProblems = 50

func (v *validator) problem(path, format string, args ...any) {
	switch {
	case len(v.problems) < v.max:
		v.problems = append(v.problems, fmt.Sprintf("schema XJustiz %s: %s: %s", v.set.version, path, fmt.Sprintf(format, args...)))
	case len(v.problems) == v.max:
		v.problems = append(v.problems, fmt.Sprintf("schema XJustiz %s: more problems not listed", v.set.version))
	}
}

// validateSchema checks the document element against the set's model of its message.
// It reports false when the set has no model for the message (nothing was checked).
func validateSchema(set *schemaSet, root *xmldsig.Element) ([]string, bool) {
	model, ok := set.roots[root.Local]
	if !ok || root.Space != Namespace {
		return nil, false
	}
	v := &validator{set: set, max: maxSchemaProblems}
	v.attributes(root.Local, root, nil)
	v.elementContent(root.Local, root, model)
	return v.problems, true
}

func (v *validator) element(path string, e *xmldsig.Element, d *decl) {
	switch d.kind {
	case contentText:
		v.attributes(path, e, d.attrs)
		if len(e.Elements()) > 0 {
			v.problem(path, "has child elements where the schema allows only text (%s)", d.simple.name)
			return
		}
		s := e.Text()
		if d.simple.collapse {
			s = strings.Join(strings.Fields(s), " ")
		}
		if !d.simple.valid(s) {
			v.problem(path, "%q is not a valid %s", clip(s), d.simple.name)
		}
	case contentElement:
		v.attributes(path, e, d.attrs)
		v.elementContent(path, e, d.model)
	case contentCode:
		v.code(path, e, d.code)
	case contentOpaque:
	}
}

// elementContent matches the children against the model in order. The XJustiz models
// are deterministic (XSD's unique particle attribution), so a greedy match decides.
func (v *validator) elementContent(path string, e *xmldsig.Element, model []decl) {
	v.noText(path, e)
	kids := e.Elements()
	i := 0
	for pi := range model {
		d := &model[pi]
		if d.choice != nil {
			if i < len(kids) {
				if alt := pick(d.choice, kids[i]); alt != nil {
					v.element(path+"/"+alt.name, kids[i], alt)
					i++
					continue
				}
			}
			v.problem(path, "one of %s is required%s", names(d.choice), v.at(kids, i))
			continue
		}
		n := 0
		for i < len(kids) && (d.max == unbounded || n < d.max) && kids[i].Space == Namespace && kids[i].Local == d.name {
			v.element(path+"/"+d.name, kids[i], d)
			i++
			n++
		}
		if n < d.min {
			v.problem(path, "%s is required%s", d.name, v.at(kids, i))
		}
	}
	for ; i < len(kids); i++ {
		v.problem(path, "element %s is not allowed here%s", qualified(kids[i]), after(kids, i))
	}
}

func pick(alts []decl, e *xmldsig.Element) *decl {
	if e.Space != Namespace {
		return nil
	}
	for i := range alts {
		if alts[i].name == e.Local {
			return &alts[i]
		}
	}
	return nil
}

func names(alts []decl) string {
	n := make([]string, len(alts))
	for i, a := range alts {
		n[i] = a.name
	}
	return strings.Join(n, ", ")
}

func (v *validator) at(kids []*xmldsig.Element, i int) string {
	if i < len(kids) {
		return ", found " + qualified(kids[i])
	}
	return ""
}

func after(kids []*xmldsig.Element, i int) string {
	if i > 0 {
		return " (after " + qualified(kids[i-1]) + ")"
	}
	return ""
}

func qualified(e *xmldsig.Element) string {
	if e.Space == Namespace {
		return e.Local
	}
	if e.Space == "" {
		return e.Local + " (no namespace)"
	}
	return "{" + e.Space + "}" + e.Local
}

// noText flags character data in element-only content.
func (v *validator) noText(path string, e *xmldsig.Element) {
	for _, c := range e.Children {
		if c.Kind == xmldsig.KindText && strings.TrimSpace(c.Text) != "" {
			v.problem(path, "text %q where the schema allows only elements", clip(c.Text))
			return
		}
	}
}

// attributes checks the declared attributes and refuses undeclared ones (the
// XJustiz types have no anyAttribute); the xsi attributes are always allowed.
func (v *validator) attributes(path string, e *xmldsig.Element, decls []attrDecl) {
	for _, a := range e.Attrs {
		if a.Space == nsXSI {
			continue
		}
		i := slices.IndexFunc(decls, func(d attrDecl) bool { return a.Space == "" && d.name == a.Local })
		if i < 0 {
			v.problem(path, "attribute %s is not allowed", a.Local)
			continue
		}
		if f := decls[i].fixed; f != "" && strings.TrimSpace(a.Value) != f {
			v.problem(path, "attribute %s is %q, the schema fixes it to %q", a.Local, clip(a.Value), f)
		}
	}
	for _, d := range decls {
		if _, ok := e.Attr(d.name); d.required && !ok {
			v.problem(path, "attribute %s is required", d.name)
		}
	}
}

func (v *validator) code(path string, e *xmldsig.Element, c *codeType) {
	v.attributes(path, e, []attrDecl{
		{name: "listURI", fixed: c.list},
		{name: "listVersionID", required: c.versionRequired, fixed: c.fixedVersion},
	})
	v.noText(path, e)
	kids := e.Elements()
	if len(kids) == 0 || kids[0].Space != "" || kids[0].Local != "code" {
		v.problem(path, "code (no namespace) is required%s", v.at(kids, 0))
		return
	}
	for i := 1; i < len(kids); i++ {
		v.problem(path, "element %s is not allowed here%s", qualified(kids[i]), after(kids, i))
	}
	k := kids[0]
	if len(k.Elements()) > 0 || len(k.Attrs) > 0 {
		v.problem(path+"/code", "has child elements or attributes where the schema allows only text")
	}
	val := strings.Join(strings.Fields(k.Text()), " ")
	if c.values != nil && !slices.Contains(c.values, val) {
		v.problem(path+"/code", "%q is not in the Codeliste %s version %s", clip(val), strings.TrimPrefix(c.list, "urn:xoev-de:xjustiz:codeliste:"), c.fixedVersion)
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
