package portal

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/fitconnect"
)

const testDestination = "0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6"

// testKeys are the destination's keys, made once for the package's tests.
var testKeys = sync.OnceValue(func() *jwkKeys {
	dec, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	sign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return &jwkKeys{dec: dec, sign: sign, signKID: "sig-1"}
})

// otherKey is a key the submissions are not encrypted to.
var otherKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// encrypt makes a compact JWE of plain to pub as FIT-Connect senders do
// (RSA-OAEP-256, A256GCM; zip DEF as the Python SDK sets it when zip).
func encrypt(t testing.TB, plain []byte, pub *rsa.PublicKey, zip bool) string {
	t.Helper()
	opts := &jose.EncrypterOptions{}
	if zip {
		opts.Compression = jose.DEFLATE
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: "enc-1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeSub is one submission at the fake platform.
type fakeSub struct {
	ref         submissionRef
	json        []byte
	attachments map[string]string
	// events are the case's event log entries the platform wrote.
	events []string
}

// posted is a SET the fake received.
type posted struct {
	caseID, set string
	payload     *setPayload
}

// fakePlatform is the Submission API in memory. A decided submission leaves
// the listing, as at the platform.
type fakePlatform struct {
	mu     sync.Mutex
	subs   map[string]*fakeSub
	order  []string
	events map[string][]string
	posts  []posted

	// Faults: the next call answers errUnauthorized; listing, posting fail;
	// the submission vanishes when its attachment is fetched.
	expireToken bool
	refreshes   int
	listErr     error
	postErr     error
	vanishAt    string
	// inFlight and maxInFlight count concurrent fetches per submission.
	inFlight    map[string]int
	maxInFlight int
	fetches     map[string]int
	// hold, when set, blocks GetSubmission until it is closed.
	hold chan struct{}
	// lostSubmit, when set, is returned by the next SubmitReply after the
	// platform accepted the reply: the answer got lost on the way back, as
	// when the gateway stops right after the platform's acceptance.
	lostSubmit error
	// failUpload, when set, fails every reply attachment upload.
	failUpload error
	// replies are the replies received, by reply id; caseOf the case of
	// every submission ever added.
	replies map[string]*fakeReply
	caseOf  map[string]string
}

func newFake() *fakePlatform {
	return &fakePlatform{subs: map[string]*fakeSub{}, events: map[string][]string{}, inFlight: map[string]int{}, fetches: map[string]int{}}
}

func (f *fakePlatform) add(s *fakeSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[s.ref.SubmissionID] = s
	if f.caseOf == nil {
		f.caseOf = map[string]string{}
	}
	f.caseOf[s.ref.SubmissionID] = s.ref.CaseID
	f.order = append(f.order, s.ref.SubmissionID)
	if len(f.events[s.ref.CaseID]) == 0 {
		f.events[s.ref.CaseID] = append(f.events[s.ref.CaseID], s.events...)
	}
}

func (f *fakePlatform) checkToken() error {
	if f.expireToken {
		return fmt.Errorf("401: %w", errUnauthorized)
	}
	return nil
}

func (f *fakePlatform) ListSubmissions(_ context.Context, dest string, offset, limit int) (submissionPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkToken(); err != nil {
		return submissionPage{}, err
	}
	if f.listErr != nil {
		return submissionPage{}, f.listErr
	}
	var all []submissionRef
	for _, id := range f.order {
		if s, ok := f.subs[id]; ok && s.ref.DestinationID == dest {
			all = append(all, s.ref)
		}
	}
	p := submissionPage{Offset: offset, TotalCount: len(all)}
	if offset < len(all) {
		p.Submissions = all[offset:min(len(all), offset+limit)]
	}
	p.Count = len(p.Submissions)
	return p, nil
}

func (f *fakePlatform) GetSubmission(_ context.Context, id string, w io.Writer) error {
	f.mu.Lock()
	if err := f.checkToken(); err != nil {
		f.mu.Unlock()
		return err
	}
	s, ok := f.subs[id]
	f.fetches[id]++
	f.inFlight[id]++
	f.maxInFlight = max(f.maxInFlight, f.inFlight[id])
	hold := f.hold
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[id]--
		f.mu.Unlock()
	}()
	if hold != nil {
		<-hold
	}
	if !ok {
		return errNotFound
	}
	_, err := w.Write(s.json)
	return err
}

func (f *fakePlatform) GetAttachment(_ context.Context, id, aid string, w io.Writer) error {
	f.mu.Lock()
	if err := f.checkToken(); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.vanishAt == id {
		delete(f.subs, id)
	}
	s, ok := f.subs[id]
	f.mu.Unlock()
	if !ok {
		return errNotFound
	}
	jwe, ok := s.attachments[aid]
	if !ok {
		return errNotFound
	}
	_, err := io.WriteString(w, jwe)
	return err
}

func (f *fakePlatform) PostEvent(_ context.Context, caseID, set string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkToken(); err != nil {
		return err
	}
	if f.postErr != nil {
		return f.postErr
	}
	p, err := parseSET(set)
	if err != nil {
		return err
	}
	f.posts = append(f.posts, posted{caseID: caseID, set: set, payload: p})
	f.events[caseID] = append(f.events[caseID], set)
	delete(f.subs, strings.TrimPrefix(p.Sub, "submission:"))
	return nil
}

func (f *fakePlatform) EventLog(_ context.Context, caseID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkToken(); err != nil {
		return nil, err
	}
	return append([]string(nil), f.events[caseID]...), nil
}

// PlatformKeys implements platform: the key the fake's own SETs are signed
// with, under kid sig-1.
func (f *fakePlatform) PlatformKeys(context.Context) (*fitconnect.KeySet, error) {
	k := fitconnect.NewKeySet()
	k.Add("sig-1", &testKeys().sign.PublicKey)
	return k, nil
}

func (f *fakePlatform) RefreshToken(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	f.expireToken = false
	return nil
}

// decisions are the decisions posted for a submission, in order.
func (f *fakePlatform) decisions(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.posts {
		if p.payload.Sub != "submission:"+id {
			continue
		}
		for ev := range p.payload.Events {
			out = append(out, strings.TrimPrefix(ev, eventPrefix))
		}
	}
	return out
}

// subSpec describes a submission a test builds; build fills what it leaves
// empty with a valid submission.
type subSpec struct {
	id, caseID  string
	data        []byte
	attachments [][]byte
	// meta, when set, replaces the metadata document.
	meta func(m map[string]any)
	// metaRaw, when set, is encrypted as the metadata instead.
	metaRaw []byte
	// tamper changes the encrypted strings before they are served.
	tamper func(s *submissionJSON)
	// encryptTo, when set, is the key everything is encrypted to.
	encryptTo *rsa.PublicKey
	zip       bool
	// submitEvent writes the platform's submit-submission into the case's
	// event log, with the true tags or, with wrongTags, another data tag.
	submitEvent bool
	wrongTags   bool
	// forgedSubmit signs submit-submission with a key not the platform's.
	forgedSubmit bool
}

// submissionJSON is the platform's answer as the fake serves it.
type submissionJSON struct {
	DestinationID     string            `json:"destinationId"`
	SubmissionID      string            `json:"submissionId"`
	CaseID            string            `json:"caseId"`
	Attachments       []string          `json:"attachments"`
	EncryptedMetadata string            `json:"encryptedMetadata"`
	EncryptedData     string            `json:"encryptedData,omitempty"`
	ServiceType       map[string]string `json:"serviceType"`
	// jwes are the attachments' JWEs, by id (not served in the JSON).
	jwes map[string]string
}

var subCounter struct {
	sync.Mutex
	n int
}

func newID(prefix byte) string {
	subCounter.Lock()
	defer subCounter.Unlock()
	subCounter.n++
	return fmt.Sprintf("%08x-0000-4000-8000-%c%011x", subCounter.n, prefix, subCounter.n)
}

func build(t testing.TB, spec subSpec) *fakeSub {
	t.Helper()
	if spec.id == "" {
		spec.id = newID('a')
	}
	if spec.caseID == "" {
		spec.caseID = newID('c')
	}
	if spec.data == nil {
		spec.data = []byte(`{"$schema":"urn:example:bauantrag","antragsteller":"Erika Mustermann"}`)
	}
	pub := &testKeys().dec.(*rsa.PrivateKey).PublicKey
	if spec.encryptTo != nil {
		pub = spec.encryptTo
	}
	s := submissionJSON{DestinationID: testDestination, SubmissionID: spec.id, CaseID: spec.caseID, Attachments: []string{},
		ServiceType: map[string]string{"name": "Baugenehmigung", "identifier": "urn:de:fim:leika:leistung:99108008252000"},
		jwes:        map[string]string{}}
	var atts []any
	for i, a := range spec.attachments {
		aid := fmt.Sprintf("%08x-1111-4000-8000-%012x", i+1, i+1)
		s.Attachments = append(s.Attachments, aid)
		s.jwes[aid] = encrypt(t, a, pub, spec.zip)
		atts = append(atts, map[string]any{"attachmentId": aid, "hash": map[string]any{"type": "sha512", "content": sha512Hex(a)},
			"purpose": "attachment", "mimeType": "message/rfc822", "filename": "message.eml"})
	}
	if atts == nil {
		atts = []any{}
	}
	md := map[string]any{"$schema": "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json",
		"publicServiceType": map[string]any{"name": "Baugenehmigung", "identifier": "urn:de:fim:leika:leistung:99108008252000"},
		"contentStructure": map[string]any{"attachments": atts, "data": map[string]any{
			"hash":             map[string]any{"type": "sha512", "content": sha512Hex(spec.data)},
			"submissionSchema": map[string]any{"schemaUri": "urn:example:bauantrag", "mimeType": "application/json"}}},
		"replyChannel": map[string]any{"eMail": map[string]any{"address": "erika@example.org"}}}
	if spec.meta != nil {
		spec.meta(md)
	}
	raw := spec.metaRaw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(md); err != nil {
			t.Fatal(err)
		}
	}
	s.EncryptedMetadata = encrypt(t, raw, pub, spec.zip)
	s.EncryptedData = encrypt(t, spec.data, pub, spec.zip)
	if spec.tamper != nil {
		spec.tamper(&s)
	}
	body, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSub{ref: submissionRef{DestinationID: testDestination, SubmissionID: spec.id, CaseID: spec.caseID}, json: body,
		attachments: s.jwes}
	if spec.submitEvent {
		tag := func(jwe string) string { return jwe[strings.LastIndexByte(jwe, '.')+1:] }
		tags := authTags{Metadata: tag(s.EncryptedMetadata), Data: tag(s.EncryptedData), Attachments: map[string]string{}}
		for id, j := range s.jwes {
			tags.Attachments[id] = tag(j)
		}
		if spec.wrongTags {
			tags.Data = "AAAAAAAAAAAAAAAAAAAAAA"
		}
		ev, _ := json.Marshal(map[string]any{"authenticationTags": tags})
		payload, _ := json.Marshal(setPayload{JTI: newID('e'), Iss: "https://api.fitko.de/fit-connect/", Iat: 1_800_000_000,
			Sub: "submission:" + spec.id, Txn: "case:" + spec.caseID, Events: map[string]json.RawMessage{eventSubmit: ev}})
		signer := testKeys()
		if spec.forgedSubmit {
			signer = &jwkKeys{sign: otherKey(), signKID: "sig-1"}
		}
		set, err := signer.SignSET(payload)
		if err != nil {
			t.Fatal(err)
		}
		fs.events = []string{set}
	}
	return fs
}

// fakeReply is a reply the fake received.
type fakeReply struct {
	submissionID, caseID string
	announced            []string
	attachments          map[string]string
	encMetadata, encData string
}

// CreateReply implements replyAPI.
func (f *fakePlatform) CreateReply(_ context.Context, submissionID string, ids []string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkToken(); err != nil {
		return "", "", err
	}
	if f.replies == nil {
		f.replies = map[string]*fakeReply{}
	}
	caseID := f.caseOf[submissionID]
	if caseID == "" {
		return "", "", errNotFound
	}
	id := newID('r')
	f.replies[id] = &fakeReply{submissionID: submissionID, caseID: caseID, announced: ids, attachments: map[string]string{}}
	return id, caseID, nil
}

func (f *fakePlatform) UploadReplyAttachment(_ context.Context, replyID, aid, jwe string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failUpload != nil {
		return f.failUpload
	}
	r, ok := f.replies[replyID]
	if !ok || !slices.Contains(r.announced, aid) {
		return errNotFound
	}
	r.attachments[aid] = jwe
	return nil
}

func (f *fakePlatform) SubmitReply(_ context.Context, replyID, encMeta, encData string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.replies[replyID]
	if !ok {
		return errNotFound
	}
	if r.encData != "" {
		return fmt.Errorf("409: reply %s is submitted already", replyID)
	}
	if len(r.attachments) != len(r.announced) {
		return fmt.Errorf("409: %d of %d attachments uploaded", len(r.attachments), len(r.announced))
	}
	r.encMetadata, r.encData = encMeta, encData
	ev, _ := json.Marshal(map[string]any{})
	payload, _ := json.Marshal(setPayload{JTI: newID('e'), Iss: "https://api.fitko.de/fit-connect/", Iat: 1_800_000_000,
		Sub: "reply:" + replyID, Txn: "case:" + r.caseID, Events: map[string]json.RawMessage{eventPrefix + "submit-reply": ev}})
	set, err := testKeys().SignSET(payload)
	if err != nil {
		return err
	}
	f.events[r.caseID] = append(f.events[r.caseID], set)
	if err := f.lostSubmit; err != nil {
		f.lostSubmit = nil
		return err
	}
	return nil
}

// submittedReplies counts the replies the platform has as submitted.
func (f *fakePlatform) submittedReplies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.replies {
		if r.encData != "" {
			n++
		}
	}
	return n
}
