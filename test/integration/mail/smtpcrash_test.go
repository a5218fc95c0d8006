//go:build integration

package mail

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// crashMessage is the i-th message of the crash stream.
func crashMessage(i int) []byte {
	return fmt.Appendf(nil, "From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: crash stream %d\r\n"+
		"Message-ID: <crash-%d@example.org>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0200\r\n\r\nBitte nur einmal eingehen lassen (%d).\r\n", i, i, i)
}

// sender delivers the crash stream as a sending MTA does: a message stays
// queued until it got a 250, and is sent again after any failure.
type sender struct {
	mu      sync.Mutex
	acked   map[int]servetest.SMTPReply // message → the 250 it got
	pending []int
	// recorded holds the messages the log had when this round began:
	// their 250 must say "already recorded as" the same id.
	recorded map[int]string
	wrong    []string // replies that broke that rule
}

// run sends pending messages over two connections until the queue is empty
// or both hit a failure (serve was killed).
func (s *sender) run(addr string) {
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				s.mu.Lock()
				if len(s.pending) == 0 {
					s.mu.Unlock()
					return
				}
				i := s.pending[0]
				s.pending = s.pending[1:]
				s.mu.Unlock()
				r, err := servetest.SendSMTP(addr, "buerger@example.org", "poststelle@kreis.example", crashMessage(i))
				s.mu.Lock()
				if err != nil || r.EventID == "" {
					s.pending = append([]int{i}, s.pending...) // first again when serve is back
					s.mu.Unlock()
					return
				}
				s.acked[i] = r
				if id, ok := s.recorded[i]; ok != r.Duplicate || (ok && id != r.EventID) {
					s.wrong = append(s.wrong, fmt.Sprintf("message %d recorded before as %q answered %q", i, id, r.Text))
				}
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// recordedIDs maps each crash-stream message in the log to its event id,
// failing on a message recorded twice.
func recordedIDs(t *testing.T, g *gw) map[int]string {
	t.Helper()
	ids := map[int]string{}
	for _, r := range servetest.Replay(t, bin, g.config, "MessageReceived") {
		m := r.Payload.(*gateway.MessageReceived)
		var i int
		if _, err := fmt.Sscanf(m.SenderMessageID, "<crash-%d@example.org>", &i); err != nil {
			t.Fatalf("unexpected message %q in the log", m.SenderMessageID)
		}
		if prev, ok := ids[i]; ok {
			t.Fatalf("message %d recorded twice: %s and %s", i, prev, r.ID)
		}
		ids[i] = r.ID
	}
	return ids
}

// TestSMTPKilledMidStream SIGKILLs serve again and again while a sender
// streams messages to it, and restarts it; the sender sends again whatever
// got no 250. Exactly once: every acknowledged message is in the log once
// under the id its 250 named; an unacknowledged one is in the log once or
// not at all; a resend of one the log already holds (its 250 lost to the
// kill) is answered "already recorded as" the first record's id. At the end
// every message is sent once more and recognised.
func TestSMTPKilledMidStream(t *testing.T) {
	const total = 150
	g := smtpGateway(t, ", accept_all: true")
	s := &sender{acked: map[int]servetest.SMTPReply{}, recorded: map[int]string{}}
	for i := range total {
		s.pending = append(s.pending, i)
	}
	// check reads the log after a kill or at the end: every acknowledged
	// message under the id its 250 named, every duplicate answer right.
	check := func() map[int]string {
		t.Helper()
		ids := recordedIDs(t, g)
		for i, r := range s.acked {
			if ids[i] != r.EventID {
				t.Fatalf("message %d acknowledged as %s but the log has %q", i, r.EventID, ids[i])
			}
		}
		if len(s.wrong) > 0 {
			t.Fatalf("resends not recognised:\n%s", strings.Join(s.wrong, "\n"))
		}
		return ids
	}
	lost := map[int]bool{} // recorded at a kill without a 250
	for round := 0; round < killRounds && len(s.pending) > 0; round++ {
		p := g.start(t)
		done := make(chan struct{})
		go func() { s.run(g.smtp); close(done) }()
		eventually(t, 60*time.Second, "the log grows", func() bool {
			select {
			case <-done:
				return true
			default:
				return len(recordedIDs(t, g)) > len(s.recorded)+5
			}
		})
		p.Kill(t)
		<-done
		s.recorded = check()
		for i := range s.recorded {
			if _, ok := s.acked[i]; !ok {
				lost[i] = true
			}
		}
		t.Logf("round %d: killed with %d recorded, %d acknowledged", round, len(s.recorded), len(s.acked))
	}
	p := g.start(t)
	s.run(g.smtp)
	if len(s.pending) != 0 {
		t.Fatalf("%d messages still unacknowledged with serve up", len(s.pending))
	}
	ids := check()
	if len(ids) != total {
		t.Fatalf("%d messages in the log, want %d", len(ids), total)
	}
	t.Logf("%d messages were recorded without their 250 at a kill and recognised when resent", len(lost))

	// Every message sent once more, as by a sender whose 250 got lost: each
	// is answered "already recorded as" the first record's id.
	s.recorded = ids
	for i := range total {
		s.pending = append(s.pending, i)
	}
	s.run(g.smtp)
	if len(s.pending) != 0 || len(s.wrong) > 0 {
		t.Fatalf("resending all: %d unacknowledged, %d not recognised:\n%s", len(s.pending), len(s.wrong), strings.Join(s.wrong, "\n"))
	}

	p.Stop(t)
	if n := len(recordedIDs(t, g)); n != total {
		t.Fatalf("%d messages in the log after the resends, want %d", n, total)
	}
}

// TestSwaksResendAfterLost250 kills serve at its crash point, after the
// append and before the 250; swaks sees the connection drop, sends the
// same message again to the restarted serve, and is told it is already
// recorded, under the first record's id. The log holds it once.
func TestSwaksResendAfterLost250(t *testing.T) {
	g := smtpGateway(t, ", accept_all: true")
	msgFile := filepath.Join(g.dir, "message.eml")
	if err := os.WriteFile(msgFile, []byte("From: buerger@example.org\nTo: poststelle@kreis.example\nSubject: resent after a lost 250\n"+
		"Message-ID: <lost-250@example.org>\nDate: Tue, 3 Jun 2025 10:00:00 +0200\n\nBitte nur einmal eingehen lassen.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	send := func() (string, error) {
		return swaks(t, g.smtp, "--from", "buerger@example.org", "--to", "poststelle@kreis.example", "--data", "@"+msgFile)
	}
	p := servetest.StartCrashing(t, bin, g.config, 1)
	waitListening(t, g.smtp)
	out, err := send()
	if err == nil || strings.Contains(out, "OK: recorded") || !strings.Contains(out, "closed connection") {
		t.Fatalf("the first delivery should have lost its 250: %v\n%s", err, out)
	}
	p.WaitKilled(t, 30*time.Second)
	first := servetest.Replay(t, bin, g.config, "MessageReceived")
	if len(first) != 1 {
		t.Fatalf("%d messages recorded at the crash point, want 1", len(first))
	}

	p = g.start(t)
	out, err = send()
	if err != nil || !strings.Contains(out, "250 2.0.0 OK: already recorded as "+first[0].ID) {
		t.Fatalf("resend: %v\n%s", err, out)
	}
	p.Stop(t)
	msgs := g.received(t)
	if len(msgs) != 1 || msgs[0].SenderMessageID != "<lost-250@example.org>" {
		t.Errorf("log holds %d messages, want the one: %+v", len(msgs), msgs)
	}
}
