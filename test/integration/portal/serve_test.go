//go:build integration

package portal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
	"github.com/poststelle/poststelle/test/integration/portal/standin"
)

var (
	buildOnce sync.Once
	serveBin  string
	buildErr  error
)

func poststelleBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "poststelle-portal-bin-")
		if err != nil {
			buildErr = err
			return
		}
		serveBin, buildErr = servetest.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return serveBin
}

// gatewaySite is a `poststelle serve` configured as the stand-in's first
// destination, with the portal: section of docs/portal.md.
type gatewaySite struct {
	dir, config, api, callback string
}

func newGatewaySite(t *testing.T, w *world) *gatewaySite {
	t.Helper()
	s := &gatewaySite{dir: t.TempDir(), api: servetest.FreeAddr(t), callback: servetest.FreeAddr(t)}
	d := w.setup.Destinations[0]
	secret := filepath.Join(s.dir, "callback-secret")
	if err := os.WriteFile(secret, []byte("portal-callback-geheimnis\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.dir, "poststelle.yaml")
	conf := fmt.Sprintf(`data_dir: %s/data
log_level: debug
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
portal:
  submission_api: %q
  token_url: %q
  client_id: %q
  client_secret_file: %q
  destination_id: %q
  decryption_key_file: %q
  signing_key_file: %q
  poll_interval: 200ms
  callback_listen: %q
  callback_secret_file: %q
  max_submission_size: 100MiB
`, s.dir, s.api, servetest.FreeAddr(t), servetest.FreeAddr(t),
		w.setup.SubmissionAPI, w.setup.TokenURL, d.Party.ClientID, filepath.Join(w.dir, "destination-client-secret"),
		d.DestinationID, filepath.Join(w.dir, "destination-decryption.jwk.json"), filepath.Join(w.dir, "destination-signing.jwk.json"),
		s.callback, secret)
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The destination's callback, as registered in the self-service portal.
	body, _ := json.Marshal(map[string]any{"callback": map[string]string{"url": "http://" + s.callback + "/fitconnect/callback", "secret": "portal-callback-geheimnis"}})
	if ans := login(t, d.Party).do(http.MethodPatch, "/destinations/"+d.DestinationID, "application/json", body); ans.Status != http.StatusOK {
		t.Fatalf("registering the callback: %d %s", ans.Status, ans.Body)
	}
	return s
}

// received waits for the MessageReceived of a submission and returns it with
// its stream.
func (s *gatewaySite) received(t *testing.T, submissionID string) (servetest.Recorded, *gateway.MessageReceived) {
	t.Helper()
	var rec servetest.Recorded
	var m *gateway.MessageReceived
	servetest.WaitFor(t, "the MessageReceived of submission "+submissionID, func() bool {
		for _, r := range servetest.Replay(t, poststelleBin(t), s.config, "MessageReceived") {
			if mr := r.Payload.(*gateway.MessageReceived); mr.Portal != nil && mr.Portal.SubmissionID == submissionID {
				rec, m = r, mr
				return true
			}
		}
		return false
	})
	return rec, m
}

// decision waits until the submission is decided at the platform and returns
// the destination's SET about it from the verified event log.
func decision(t *testing.T, submissionID, caseID string) *standin.SET {
	t.Helper()
	servetest.WaitFor(t, "a decision on "+submissionID, func() bool {
		st := submissionState(t, submissionID)
		return st == "accepted" || st == "rejected"
	})
	sets := verifiedLog(t, login(t, shared.setup.Sender), caseID)
	var got *standin.SET
	for _, s := range sets {
		if s.Event == standin.EventAcceptSubmission || s.Event == standin.EventRejectSubmission {
			if got != nil {
				t.Fatalf("two decisions in the event log: %v", eventNames(sets))
			}
			got = s
		}
	}
	if got == nil || got.Claims.Iss != shared.setup.Destinations[0].DestinationID || got.Kid != shared.setup.Destinations[0].SignatureKid ||
		got.Claims.Sub != "submission:"+submissionID {
		t.Fatalf("decision %+v in %v", got, eventNames(sets))
	}
	return got
}

// TestServe: the full round trip through the real `poststelle serve`
// binary as the destination. The SDK submits; the gateway fetches,
// decrypts, verifies, records one MessageReceived with the portal fields and
// posts accept-submission with the tags of the platform's submit-submission
// (the test verifies the SET with the destination's registered key). A
// submission whose metadata states a wrong hash, one encrypted to another
// key and one whose stored tag the platform changed are recorded and rejected
// with the right problems. An office answers through the office API; the
// reply reaches the citizen, who decrypts it with jwcrypto. Expired tokens
// are renewed; a submission that vanishes between listing and fetch is
// neither recorded nor confirmed.
func TestServe(t *testing.T) {
	w, err := startStandin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			t.Logf("what the stand-in refused:\n%s", refusals(w.log()))
		}
	})
	useWorld(t, w)
	site := newGatewaySite(t, w)
	serve := servetest.Start(t, poststelleBin(t), site.config, site.api)

	// 1. A good submission with an attachment, asking for the answer over
	// FIT-Connect.
	keyFile := filepath.Join(t.TempDir(), "citizen.jwk.json")
	var good submitted
	py(t, &good, "submit", "--attachments", "2", "--reply-key", keyFile)
	rec, m := site.received(t, good.SubmissionID)
	p := m.Portal
	if m.Channel != gateway.ChannelPortal || p.DestinationID != good.DestinationID || p.CaseID != good.CaseID ||
		p.ServiceIdentifier != standin.ServiceIdentifier || p.LeikaKey != "99123456760610" || p.ReplyChannel != "fitConnect" ||
		p.Decision != gateway.PortalAccepted || len(p.Problems) != 0 || len(m.Problems) != 0 {
		t.Fatalf("MessageReceived: channel %s portal %+v problems %q", m.Channel, p, m.Problems)
	}
	// The platform's new-submissions callback reached the gateway and was
	// taken (200: its HMAC and timestamp verified).
	servetest.WaitFor(t, "the gateway taking a callback", func() bool {
		return slices.ContainsFunc(callbacks(t), func(c standin.CallbackRecord) bool {
			return c.URL == "http://"+site.callback+"/fitconnect/callback" && c.Status == http.StatusOK
		})
	})
	set := decision(t, good.SubmissionID, good.CaseID)
	if set.Event != standin.EventAcceptSubmission {
		t.Fatalf("decision %s, want accept-submission", set.Event)
	}
	var acc struct {
		AuthenticationTags standin.AuthenticationTags `json:"authenticationTags"`
	}
	if err := json.Unmarshal(set.Payload, &acc); err != nil {
		t.Fatal(err)
	}
	// The stand-in already refused tags other than the JWEs'; the record
	// carries the same.
	if p.AuthenticationTags == nil || p.AuthenticationTags.Metadata != acc.AuthenticationTags.Metadata || len(acc.AuthenticationTags.Attachments) != 2 {
		t.Fatalf("tags: recorded %+v, posted %+v", p.AuthenticationTags, acc.AuthenticationTags)
	}

	// 2. Submissions the destination must reject.
	for _, c := range []struct {
		tamper, problem, instance string
	}{
		{"hash", "hash-mismatch", "data"},
		{"wrong-key", "encryption-issue", "data"},
	} {
		t.Run(c.tamper, func(t *testing.T) {
			var bad submitted
			py(t, &bad, "submit", "--attachments", "1", "--tamper", c.tamper)
			_, m := site.received(t, bad.SubmissionID)
			if m.Portal.Decision != gateway.PortalRejected || !slices.ContainsFunc(m.Portal.Problems, func(pr gateway.PortalProblem) bool {
				return pr.Type == standin.ProblemTypePrefix+c.problem
			}) {
				t.Fatalf("recorded %+v", m.Portal)
			}
			set := decision(t, bad.SubmissionID, bad.CaseID)
			if set.Event != standin.EventRejectSubmission {
				t.Fatalf("decision %s, want reject-submission", set.Event)
			}
			var rej struct {
				Problems []standin.EventProblem `json:"problems"`
			}
			if err := json.Unmarshal(set.Payload, &rej); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rej.Problems, func(pr standin.EventProblem) bool {
				return pr.Type == standin.ProblemTypePrefix+c.problem && pr.Instance == c.instance
			}) {
				t.Fatalf("problems %+v, want %s at %s", rej.Problems, c.problem, c.instance)
			}
		})
	}

	// 3. An office answers; the reply reaches the citizen.
	const answer = "Ihr Antrag ist eingegangen und wird bearbeitet."
	servetest.Reply(t, site.api, filepath.Join(site.dir, "data"), rec.Stream, answer)
	servetest.WaitEvents(t, poststelleBin(t), site.config, "ReplySent", 1)
	var got replied
	py(t, &got, "replies", "--key", keyFile)
	if len(got.Replies) != 1 || got.Replies[0].SubmissionID != good.SubmissionID || got.Replies[0].CaseID != good.CaseID ||
		!strings.Contains(got.Replies[0].Data, answer) {
		t.Fatalf("the citizen got %+v", got)
	}
	names := eventNames(verifiedLog(t, login(t, w.setup.Sender), good.CaseID))
	if !slices.Equal(names, []string{"create-submission", "submit-submission", "accept-submission", "submit-reply", "accept-reply"}) {
		t.Fatalf("event log %v", names)
	}

	// 4. The platform expires every token: the gateway's next call gets 401,
	// it fetches a new token and goes on.
	control(t, "/expire-tokens", nil)
	var later submitted
	py(t, &later, "submit", "--attachments", "0")
	if _, m := site.received(t, later.SubmissionID); m.Portal.Decision != gateway.PortalAccepted {
		t.Fatalf("after the tokens expired: %+v", m.Portal)
	}
	if set := decision(t, later.SubmissionID, later.CaseID); set.Event != standin.EventAcceptSubmission {
		t.Fatalf("after the tokens expired: %s", set.Event)
	}

	// 5. With serve stopped: one submission vanishes after the listing that
	// shows it (the gateway's fetch gets 404), and the platform changes the
	// stored tag of another's attachment after submit-submission (the gateway
	// compares the JWEs with the platform's record and rejects).
	serve.Stop(t)
	var vanished, swapped submitted
	py(t, &vanished, "submit", "--attachments", "0")
	py(t, &swapped, "submit", "--attachments", "1")
	control(t, "/vanish", map[string]string{"submissionId": vanished.SubmissionID})
	control(t, "/tamper", map[string]string{"submissionId": swapped.SubmissionID, "part": "attachment:" + swapped.Attachments[0] + ":tag"})
	servetest.Start(t, poststelleBin(t), site.config, site.api)
	_, m = site.received(t, swapped.SubmissionID)
	set = decision(t, swapped.SubmissionID, swapped.CaseID)
	if m.Portal.Decision != gateway.PortalRejected || set.Event != standin.EventRejectSubmission ||
		!slices.ContainsFunc(m.Portal.Problems, func(pr gateway.PortalProblem) bool {
			return pr.Type == standin.ProblemTypePrefix+"incorrect-authentication-tag"
		}) {
		t.Fatalf("a swapped attachment: recorded %+v, posted %s", m.Portal, set.Event)
	}
	// The vanished one was listed with the swapped one (oldest first), so the
	// gateway has been past it: nothing recorded, nothing decided.
	if st := submissionState(t, vanished.SubmissionID); st != "submitted" {
		t.Fatalf("the vanished submission was decided: %s", st)
	}

	// One message per submission, however often it was listed.
	seen := map[string]int{}
	for _, r := range servetest.Replay(t, poststelleBin(t), site.config, "MessageReceived") {
		if mr := r.Payload.(*gateway.MessageReceived); mr.Portal != nil {
			seen[mr.Portal.SubmissionID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("submission %s recorded %d times", id, n)
		}
	}
	if seen[vanished.SubmissionID] != 0 || len(seen) != 5 {
		t.Errorf("%d submissions recorded, want 5 (the vanished one not: %d)", len(seen), seen[vanished.SubmissionID])
	}
}

// refusals are the stand-in's log lines about refused requests, each once.
func refusals(log string) string {
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(log, "\n") {
		i := strings.Index(l, "msg=\"request refused\"")
		if i < 0 || seen[l[i:]] {
			continue
		}
		seen[l[i:]] = true
		out = append(out, l[i:])
	}
	return strings.Join(out, "\n")
}
