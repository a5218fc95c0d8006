package xjustiz

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

// xsdNode is a schema document read as a plain tree.
type xsdNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Kids    []xsdNode  `xml:",any"`
}

func (n *xsdNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// xsdSet holds the top-level declarations of every schema file of one version.
type xsdSet struct {
	types    map[string]*xsdNode
	elements map[string]*xsdNode
}

func loadXSD(t *testing.T, version string) *xsdSet {
	t.Helper()
	dir := corpus.Path(t, "xjustiz", "xsd", version)
	files, err := filepath.Glob(filepath.Join(dir, "*.xsd"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files in %s: %v", dir, err)
	}
	s := &xsdSet{types: map[string]*xsdNode{}, elements: map[string]*xsdNode{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var root xsdNode
		if err := xml.Unmarshal(data, &root); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range root.Kids {
			k := &root.Kids[i]
			switch k.XMLName.Local {
			case "complexType", "simpleType":
				s.types[k.attr("name")] = k
			case "element":
				s.elements[k.attr("name")] = k
			}
		}
	}
	return s
}

// opaqueTypes are the types whose content the tables leave unchecked.
var opaqueTypes = map[string]bool{"Type.GDS.Grunddaten": true, "Type.GDS.Schriftgutobjekte": true}

// simpleNames maps the schema's simple types to the tables' checks; every other
// simple type is a string whose repertoire is not checked.
var simpleNames = map[string]string{
	"xs:dateTime": "xs:dateTime", "xs:date": "xs:date", "xs:boolean": "xs:boolean",
	"xs:integer": "xs:integer", "xs:token": "xs:token", "tns:Type.GDS.Xdomea.stringUUIDType": "Type.GDS.Xdomea.stringUUIDType",
}

// describeXSD renders a content model from the schema in the notation describeDecl
// renders the tables in.
func (s *xsdSet) model(t *testing.T, n *xsdNode) string {
	var parts []string
	for i := range n.Kids {
		k := &n.Kids[i]
		switch k.XMLName.Local {
		case "sequence":
			parts = append(parts, s.model(t, k))
		case "choice":
			var alts []string
			for j := range k.Kids {
				if k.Kids[j].XMLName.Local == "element" {
					alts = append(alts, s.element(t, &k.Kids[j]))
				}
			}
			parts = append(parts, "choice("+strings.Join(alts, "|")+")")
		case "element":
			parts = append(parts, s.element(t, k))
		case "complexContent":
			for j := range k.Kids {
				ext := &k.Kids[j]
				if ext.XMLName.Local == "extension" {
					base := s.types[strings.TrimPrefix(ext.attr("base"), "tns:")]
					if base == nil {
						t.Fatalf("base type %s not found", ext.attr("base"))
					}
					parts = append(parts, s.model(t, base), s.model(t, ext))
				}
			}
		}
	}
	return strings.Join(nonEmpty(parts), ",")
}

func nonEmpty(p []string) []string {
	out := p[:0]
	for _, s := range p {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func occurs(n *xsdNode) string {
	min, max := n.attr("minOccurs"), n.attr("maxOccurs")
	if min == "" {
		min = "1"
	}
	switch max {
	case "":
		max = "1"
	case "unbounded":
		max = "n"
	}
	return "[" + min + "," + max + "]"
}

func (s *xsdSet) element(t *testing.T, n *xsdNode) string {
	name := n.attr("name") + occurs(n)
	for i := range n.Kids {
		if n.Kids[i].XMLName.Local == "complexType" {
			return name + s.complex(t, &n.Kids[i])
		}
	}
	typ := n.attr("type")
	local := strings.TrimPrefix(typ, "tns:")
	if opaqueTypes[local] {
		return name + "opaque"
	}
	if ct := s.types[local]; ct != nil && ct.XMLName.Local == "complexType" && strings.HasPrefix(typ, "tns:") {
		if strings.HasPrefix(local, "Code.") {
			return name + s.code(t, ct)
		}
		return name + s.complex(t, ct)
	}
	if v, ok := simpleNames[typ]; ok {
		if f := n.attr("fixed"); f != "" {
			v += "=" + f
		}
		return name + "text:" + v
	}
	return name + "text:string"
}

func (s *xsdSet) complex(t *testing.T, ct *xsdNode) string {
	body := "{" + s.model(t, ct) + "}"
	for i := range ct.Kids {
		a := &ct.Kids[i]
		if a.XMLName.Local == "attribute" {
			body += fmt.Sprintf("@%s(%s,%s)", a.attr("name"), a.attr("use"), a.attr("fixed"))
		}
	}
	return body
}

// code renders an XÖV code type: the Codeliste URN, whether listVersionID is
// required, its fixed value, and the enumerated values of a Typ2 list.
func (s *xsdSet) code(t *testing.T, ct *xsdNode) string {
	var list, use, fixed, values string
	var walk func(n *xsdNode)
	walk = func(n *xsdNode) {
		for i := range n.Kids {
			k := &n.Kids[i]
			switch {
			case k.XMLName.Local == "attribute" && k.attr("name") == "listURI":
				list = k.attr("fixed")
			case k.XMLName.Local == "attribute" && k.attr("name") == "listVersionID":
				use, fixed = k.attr("use"), k.attr("fixed")
			case k.XMLName.Local == "element" && k.attr("name") == "code":
				values = s.enumeration(k)
			case k.XMLName.Local == "annotation":
				continue
			default:
				walk(k)
			}
		}
	}
	walk(ct)
	return fmt.Sprintf("code(%s,%s,%s,%s)", list, use, fixed, values)
}

func (s *xsdSet) enumeration(el *xsdNode) string {
	src := el
	if typ := el.attr("type"); strings.HasPrefix(typ, "tns:") {
		src = s.types[strings.TrimPrefix(typ, "tns:")]
	}
	var v []string
	var walk func(n *xsdNode)
	walk = func(n *xsdNode) {
		for i := range n.Kids {
			k := &n.Kids[i]
			if k.XMLName.Local == "enumeration" {
				v = append(v, k.attr("value"))
			} else if k.XMLName.Local != "annotation" {
				walk(k)
			}
		}
	}
	if src != nil {
		walk(src)
	}
	return strings.Join(v, " ")
}

// describeModel renders a table in the same notation.
func describeModel(m []decl) string {
	parts := make([]string, len(m))
	for i := range m {
		parts[i] = describeDecl(&m[i])
	}
	return strings.Join(parts, ",")
}

func describeDecl(d *decl) string {
	if d.choice != nil {
		alts := make([]string, len(d.choice))
		for i := range d.choice {
			alts[i] = describeDecl(&d.choice[i])
		}
		return "choice(" + strings.Join(alts, "|") + ")"
	}
	max := fmt.Sprint(d.max)
	if d.max == unbounded {
		max = "n"
	}
	name := fmt.Sprintf("%s[%d,%s]", d.name, d.min, max)
	switch d.kind {
	case contentText:
		return name + "text:" + d.simple.name
	case contentCode:
		use := "optional"
		if d.code.versionRequired {
			use = "required"
		}
		return name + fmt.Sprintf("code(%s,%s,%s,%s)", d.code.list, use, d.code.fixedVersion, strings.Join(d.code.values, " "))
	case contentOpaque:
		return name + "opaque"
	}
	body := "{" + describeModel(d.model) + "}"
	for _, a := range d.attrs {
		use := ""
		if a.required {
			use = "required"
		}
		body += fmt.Sprintf("@%s(%s,%s)", a.name, use, a.fixed)
	}
	return name + body
}

// TestSchemaTables derives each message's content model from the published schema
// files and compares it with the table the validator uses.
func TestSchemaTables(t *testing.T) {
	for _, version := range SchemaVersions() {
		t.Run(version, func(t *testing.T) {
			xsd := loadXSD(t, version)
			set := schemaSets[version]
			for root, model := range set.roots {
				el := xsd.elements[root]
				if el == nil {
					t.Errorf("%s: no element in the schema files", root)
					continue
				}
				want := xsd.element(t, el)
				got := describeDecl(&decl{name: root, min: 1, max: 1, kind: contentElement, model: model})
				if got != want {
					t.Errorf("%s:\n table %s\nschema %s", root, got, want)
				}
			}
		})
	}
}

// TestSchemaTables370 holds the 3.7.0 schema files to the 3.6.2 tables: 3.7.0 keeps
// the Nachrichtenkopf and the eEB of 3.6.2, xjustizVersion fixed "3.6.2" included, so
// a 3.7.0 message is checked with them (see schemaSets).
func TestSchemaTables370(t *testing.T) {
	xsd := loadXSD(t, "3.7.0")
	set := schemaSets["3.6.2"]
	for root, model := range set.roots {
		el := xsd.elements[root]
		if el == nil {
			t.Errorf("%s: no element in the 3.7.0 schema files", root)
			continue
		}
		want := xsd.element(t, el)
		got := describeDecl(&decl{name: root, min: 1, max: 1, kind: contentElement, model: model})
		if got != want {
			t.Errorf("%s:\n table %s\nschema %s", root, got, want)
		}
	}
}
