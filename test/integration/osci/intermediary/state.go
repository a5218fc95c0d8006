package intermediary

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/osci"
)

// Bounds on what the stand-in remembers, so that a runaway client cannot grow it
// without end.
const (
	maxDialogs    = 1024
	maxIssuedIDs  = 100000
	maxChallenges = 100000
)

// state is what a real intermediary keeps in its database.
type state struct {
	dialogs map[string]*dialog
	// issued are message ids handed out and not yet used; used those a delivery took.
	issued, used map[string]bool
	// challenges are the clients' challenges seen, in order, for replay refusal.
	challenges     map[string]bool
	challengeOrder []string
	// mailboxes hold the deliveries not yet acknowledged, by CertificateKey of the
	// addressee's cipher certificate, oldest first.
	mailboxes  map[string][]*delivery
	deliveries map[string]*delivery
	// order is the message ids of deliveries as they came.
	order []string
}

func newState() *state {
	return &state{
		dialogs: map[string]*dialog{}, issued: map[string]bool{}, used: map[string]bool{},
		challenges: map[string]bool{}, mailboxes: map[string][]*delivery{}, deliveries: map[string]*delivery{},
	}
}

// dialog is an explicit dialog opened by InitDialog.
type dialog struct {
	id string
	// signer is the client's signature certificate, which every request must be signed
	// with; cipher the certificate its answers are encrypted for (and, for a
	// recipient, its mailbox).
	signer *cert.Certificate
	cipher *x509.Certificate
	// challenge is the one we sent last: the next request's Response.
	challenge string
	// seq is the SequenceNumber of the last request; -1 after InitDialog.
	seq int64
	// fetched are deliveries handed out in the dialog, removed when it ends.
	fetched []*delivery
}

// delivery is a stored delivery with its process card.
type delivery struct {
	id      string
	subject string
	// addressee is the CertificateKey of the addressee's cipher certificate.
	addressee string
	// originator is the signature certificate of the storeDelivery's signer.
	originator   *cert.Certificate
	certificates []osci.CertificateEntry
	content      []byte
	parts        []*osci.Part
	quality      []osci.QualityOfTimestamp

	creation, forwarding, reception *osci.Timestamp
	modified                        time.Time
	inspections                     []osci.Inspection
}

func (d *delivery) bundle() osci.ProcessCardBundle {
	return osci.ProcessCardBundle{
		MessageID: d.id,
		Card: osci.ProcessCard{
			RecentModification: d.modified, Creation: d.creation, Forwarding: d.forwarding, Reception: d.reception,
			Subject: d.subject,
		},
		Report: d.inspections,
	}
}

func (st *state) seeChallenge(c string) bool {
	if st.challenges[c] {
		return false
	}
	if len(st.challengeOrder) >= maxChallenges {
		delete(st.challenges, st.challengeOrder[0])
		st.challengeOrder = st.challengeOrder[1:]
	}
	st.challenges[c] = true
	st.challengeOrder = append(st.challengeOrder, c)
	return true
}

func (st *state) add(d *delivery) {
	st.deliveries[d.id] = d
	st.order = append(st.order, d.id)
}

// remove takes a delivery out of its mailbox; its process card stays.
func (st *state) remove(d *delivery) bool {
	box := st.mailboxes[d.addressee]
	for i, x := range box {
		if x == d {
			st.mailboxes[d.addressee] = append(box[:i:i], box[i+1:]...)
			return true
		}
	}
	return false
}

// token is a fresh random value in base64, as the library writes challenges and
// conversation ids.
func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// newMessageID is a message id on the wire: the library base64-decodes it to the
// application's id and encodes it again when it sends it back.
func newMessageID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString([]byte("poststelle-intermediary-" + hex.EncodeToString(b)))
}
