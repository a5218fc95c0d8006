package standin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ErrUnknown is returned by the fault hooks for an unknown submission.
var ErrUnknown = errors.New("standin: unknown submission")

// Vanish makes a submission disappear after the next listing that shows
// it: that listing still has it, every later fetch answers 404
// submission-not-found and later listings leave it out, as when the
// platform deletes a submission between a subscriber's list and its get.
func (s *Server) Vanish(submissionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.submissions[submissionID]
	if sub == nil {
		return ErrUnknown
	}
	sub.vanishAfterList = true
	return nil
}

// Tamper changes the stored bytes of a submission's part after the
// platform wrote submit-submission: "metadata", "data" or
// "attachment:<id>". It flips one bit of the JWE's ciphertext (its fourth
// segment), so the JWE no longer decrypts while its authentication tag
// still matches the event log's; with part suffixed ":tag" it flips a bit of
// the tag instead, so the tag no longer matches the log.
func (s *Server) Tamper(submissionID, part string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.submissions[submissionID]
	if sub == nil {
		return ErrUnknown
	}
	segment := 3
	if p, ok := strings.CutSuffix(part, ":tag"); ok {
		part, segment = p, 4
	}
	var target *string
	switch {
	case part == "metadata":
		target = &sub.EncMetadata
	case part == "data":
		target = &sub.EncData
	case strings.HasPrefix(part, "attachment:"):
		aid := strings.TrimPrefix(part, "attachment:")
		jwe, ok := sub.Attachments[aid]
		if !ok {
			return fmt.Errorf("standin: submission %s has no attachment %s", submissionID, aid)
		}
		flipped, err := flipSegment(jwe, segment)
		if err != nil {
			return err
		}
		sub.Attachments[aid] = flipped
		return nil
	default:
		return fmt.Errorf("standin: unknown part %q", part)
	}
	flipped, err := flipSegment(*target, segment)
	if err != nil {
		return err
	}
	*target = flipped
	return nil
}

func flipSegment(jwe string, segment int) (string, error) {
	parts := strings.Split(jwe, ".")
	if len(parts) != 5 {
		return "", errors.New("standin: not a compact JWE")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[segment])
	if err != nil || len(b) == 0 {
		return "", errors.New("standin: nothing to tamper with in that segment")
	}
	b[len(b)/2] ^= 0x01
	parts[segment] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, "."), nil
}

// ExpireTokens makes every access token issued so far expire now; the next
// request with one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Now()
	for k, t := range s.tokens {
		t.expires = now
		s.tokens[k] = t
	}
}

// State returns a submission's state (incomplete, submitted, accepted,
// rejected) and whether it exists.
func (s *Server) State(submissionID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.submissions[submissionID]
	if sub == nil {
		return "", false
	}
	return sub.State, true
}

// EventLog returns a case's event log.
func (s *Server) EventLog(caseID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl := s.cases[caseID]; cl != nil {
		return slices.Clone(cl.Events)
	}
	return nil
}

// ControlHandler serves the fault hooks over HTTP for tests that run the
// stand-in as its own process (cmd/fitconnect-standin), each request with
// the header X-Standin-Control: <secret>:
//
//	POST /_standin/vanish         {"submissionId": "..."}
//	POST /_standin/tamper         {"submissionId": "...", "part": "metadata"}
//	POST /_standin/expire-tokens
//	GET  /_standin/submissions/{id}  → {"state": "..."}
//	GET  /_standin/callbacks      → [CallbackRecord, ...]
func (s *Server) ControlHandler(secret string) http.Handler {
	mux := http.NewServeMux()
	type control struct {
		SubmissionID string `json:"submissionId"`
		Part         string `json:"part"`
	}
	read := func(w http.ResponseWriter, r *http.Request) (control, bool) {
		var req control
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return req, false
		}
		return req, true
	}
	answer := func(w http.ResponseWriter, err error) {
		switch {
		case errors.Is(err, ErrUnknown):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /_standin/vanish", func(w http.ResponseWriter, r *http.Request) {
		if req, ok := read(w, r); ok {
			answer(w, s.Vanish(req.SubmissionID))
		}
	})
	mux.HandleFunc("POST /_standin/tamper", func(w http.ResponseWriter, r *http.Request) {
		if req, ok := read(w, r); ok {
			answer(w, s.Tamper(req.SubmissionID, req.Part))
		}
	})
	mux.HandleFunc("POST /_standin/expire-tokens", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_standin/submissions/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.State(r.PathValue("id"))
		if !ok {
			http.Error(w, "unknown submission", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"state": st})
	})
	mux.HandleFunc("GET /_standin/callbacks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Callbacks())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if secret == "" || !constantEqual(r.Header.Get("X-Standin-Control"), secret) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
