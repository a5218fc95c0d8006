package egvprecord

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// TestMarkDetachedSignatures: the detached signatures Read pairs with their
// files become parts of kind "signature", whatever their extension; one
// without its file, the files themselves and inline contents keep their kind.
func TestMarkDetachedSignatures(t *testing.T) {
	names := []string{"klage.pdf", "klage.pdf.pkcs7", "anlage.xml", "anlage.xml.sig", "bescheid.pdf.p7s", "waise.pdf.sig"}
	project := &osci.ContentContainer{ID: egvp.ContainerProject}
	var parts []gateway.Part
	for i, n := range names {
		project.Contents = append(project.Contents, &osci.Content{Href: "cid:" + n})
		// as the OSCI channel lists an attachment
		parts = append(parts, gateway.Part{Path: "c1." + string(rune('1'+i)), Filename: n, Kind: "attachment"})
	}
	project.Contents = append(project.Contents, &osci.Content{Base64ID: egvp.FileCard, Base64: []byte("<x/>")})
	parts = append(parts, gateway.Part{Path: "c1.7", Filename: egvp.FileCard, Kind: "attachment"})
	env := &osci.Envelope{ContentPackage: &osci.ContentPackage{Containers: []*osci.ContentContainer{project}}}
	m, err := egvp.Read(context.Background(), egvp.Delivery{Envelope: env}, egvp.Config{}, egvp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	MarkDetachedSignatures(parts, m)
	want := map[string]string{"klage.pdf": "attachment", "klage.pdf.pkcs7": "signature", "anlage.xml": "attachment",
		"anlage.xml.sig": "signature", "bescheid.pdf.p7s": "attachment", "waise.pdf.sig": "attachment", egvp.FileCard: "attachment"}
	for _, p := range parts {
		if p.Kind != want[p.Filename] {
			t.Errorf("%s: kind %q, want %q", p.Filename, p.Kind, want[p.Filename])
		}
	}
}
