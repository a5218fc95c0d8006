package egvp

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// TestMarkDetachedSignatures: the detached signatures Read pairs with their
// files become parts of kind "signature", whatever their extension; one
// without its file, the files themselves and inline contents keep their kind.
func TestMarkDetachedSignatures(t *testing.T) {
	names := []string{"klage.pdf", "klage.pdf.pkcs7", "anlage.xml", "anlage.xml.sig", "bescheid.pdf.p7s", "waise.pdf.sig"}
	project := &osci.ContentContainer{ID: ContainerProject}
	var parts []gateway.Part
	for i, n := range names {
		project.Contents = append(project.Contents, &osci.Content{Href: "cid:" + n})
		// as the OSCI channel lists an attachment
		parts = append(parts, gateway.Part{Path: "c1." + string(rune('1'+i)), Filename: n, Kind: "attachment"})
	}
	project.Contents = append(project.Contents, &osci.Content{Base64ID: FileCard, Base64: []byte("<x/>")})
	parts = append(parts, gateway.Part{Path: "c1.7", Filename: FileCard, Kind: "attachment"})
	env := &osci.Envelope{ContentPackage: &osci.ContentPackage{Containers: []*osci.ContentContainer{project}}}
	m, err := Read(context.Background(), Delivery{Envelope: env}, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	MarkDetachedSignatures(parts, m)
	want := map[string]string{"klage.pdf": "attachment", "klage.pdf.pkcs7": "signature", "anlage.xml": "attachment",
		"anlage.xml.sig": "signature", "bescheid.pdf.p7s": "attachment", "waise.pdf.sig": "attachment", FileCard: "attachment"}
	for _, p := range parts {
		if p.Kind != want[p.Filename] {
			t.Errorf("%s: kind %q, want %q", p.Filename, p.Kind, want[p.Filename])
		}
	}
}
