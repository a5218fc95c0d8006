package oscichannel

import (
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
)

// partKindSignature is the part kind of a detached CMS signature, as
// mail/mailmsg names it; the verification projection verifies such a part
// against the part named like it without its extension.
const partKindSignature = "signature"

// markDetachedSignatures gives every detached signature that egvp paired
// with the file it signs ("a.pdf.p7s", ".pkcs7", ".sig" beside "a.pdf") the
// kind "signature", so that the verification projection checks it against
// that file, whatever its extension. An unpaired one stays an attachment: a
// ".sig" without its file may be anything.
func markDetachedSignatures(parts []gateway.Part, m *egvp.Message) {
	paired := map[string]bool{}
	for _, p := range m.Parts {
		if p.SignatureOf != "" {
			paired[p.Name] = true
		}
	}
	for i := range parts {
		if parts[i].Kind == "attachment" && paired[parts[i].Filename] {
			parts[i].Kind = partKindSignature
		}
	}
}
