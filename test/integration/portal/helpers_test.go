//go:build integration

package portal

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/test/integration/portal/standin"
)

// world is the stand-in process the tests share, with its setup.
type world struct {
	dir     string
	setup   standin.Setup
	proc    *exec.Cmd
	logPath string
}

var shared *world

func TestMain(m *testing.M) {
	code, err := runMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// standinBin is the built cmd/fitconnect-standin; keysFile caches its keys
// in the user's cache directory (seven 4096-bit RSA keys are slow to make on
// a busy machine).
var standinBin, keysFile string

// runMain builds cmd/fitconnect-standin, starts the shared stand-in on
// 127.0.0.1 and runs the tests.
func runMain(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "poststelle-portal-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	standinBin = filepath.Join(dir, "fitconnect-standin")
	if out, err := exec.Command("go", "build", "-o", standinBin, "github.com/poststelle/poststelle/test/integration/portal/standin/cmd/fitconnect-standin").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the stand-in: %v\n%s", err, out)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = dir
	}
	keysFile = filepath.Join(cache, "poststelle", "fitconnect-standin-keys.json")
	w, err := startStandin(filepath.Join(dir, "shared"))
	if err != nil {
		return 0, err
	}
	defer w.stop()
	shared = w
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stand-in log (tail):\n%s\n", tail(w.log(), 60))
	}
	return code, nil
}

// startStandin runs the stand-in process with its state in dir and waits
// for its address.
func startStandin(dir string) (*world, error) {
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "standin.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(standinBin, "-listen", "127.0.0.1:0", "-state", state, "-keys", keysFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &world{dir: state, proc: cmd, logPath: logf.Name()}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(state, "addr")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			w.stop()
			return nil, fmt.Errorf("the stand-in did not start:\n%s", w.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, err := os.ReadFile(filepath.Join(state, "standin.json"))
	if err != nil {
		w.stop()
		return nil, err
	}
	if err := json.Unmarshal(data, &w.setup); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

func (w *world) stop() {
	_ = w.proc.Process.Signal(os.Interrupt)
	_ = w.proc.Wait()
}

func (w *world) log() string {
	b, _ := os.ReadFile(w.logPath)
	return string(b)
}

// useWorld makes the helpers (login, py, control, ...) talk to w until the
// test ends. The tests of this package do not run in parallel.
func useWorld(t *testing.T, w *world) {
	t.Helper()
	old := shared
	shared = w
	t.Cleanup(func() { shared = old })
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// py runs portal.py with the SDK and decodes its JSON output into out.
func py(t *testing.T, out any, args ...string) {
	t.Helper()
	if err := pyErr(t, out, args...); err != nil {
		t.Fatal(err)
	}
}

func pyErr(t *testing.T, out any, args ...string) error {
	t.Helper()
	python := os.Getenv("PORTAL_PYTHON")
	if python == "" {
		t.Fatal("PORTAL_PYTHON is not set: run test/integration/portal/run.sh, which makes the venv with fitconnect==0.4.2")
	}
	all := append([]string{"portal.py", "--setup", filepath.Join(shared.dir, "standin.json")}, args...)
	cmd := exec.Command(python, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("portal.py %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 30))
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			return fmt.Errorf("portal.py %s: output %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
	}
	return nil
}

// submitted is portal.py submit's output.
type submitted struct {
	SubmissionID     string   `json:"submissionId"`
	CaseID           string   `json:"caseId"`
	DestinationID    string   `json:"destinationId"`
	Attachments      []string `json:"attachments"`
	DataSHA512       string   `json:"dataSha512"`
	AttachmentSHA512 []string `json:"attachmentSha512"`
	ReplyKid         string   `json:"replyKid"`
}

// api is a plain client of the stand-in's API, written for these tests.
type api struct {
	t     *testing.T
	token string
}

func login(t *testing.T, p standin.Party) *api {
	t.Helper()
	resp, err := http.PostForm(shared.setup.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ClientID}, "client_secret": {p.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("token answer %+v: %v", tok, err)
	}
	return &api{t: t, token: tok.AccessToken}
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a *api) do(method, path, contentType string, body []byte) answer {
	a.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = shared.setup.SubmissionAPI + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (a *api) getJSON(path string, out any) {
	a.t.Helper()
	ans := a.do(http.MethodGet, path, "", nil)
	if ans.Status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, ans.Status, ans.Body)
	}
	if err := json.Unmarshal(ans.Body, out); err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
}

// problem decodes an RFC 7807 answer and checks its form: the content type,
// type under FITKO's prefix, title, status equal to the HTTP status.
func problem(t *testing.T, ans answer) standin.Problem {
	t.Helper()
	if ct := ans.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (%d %s)", ct, ans.Status, ans.Body)
	}
	var p standin.Problem
	if err := json.Unmarshal(ans.Body, &p); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Type, standin.ProblemPrefix) || p.Title == "" || p.Status != ans.Status {
		t.Fatalf("problem %+v for status %d", p, ans.Status)
	}
	return p
}

func destination(i int) standin.DestinationSetup { return shared.setup.Destinations[i] }

func privateKey(t *testing.T, j standin.JWK) *rsa.PrivateKey {
	t.Helper()
	k, err := j.RSAPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func decrypt(t *testing.T, key *rsa.PrivateKey, compact string) []byte {
	t.Helper()
	obj, err := jose.ParseEncryptedCompact(compact, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := obj.Decrypt(key)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func encrypt(t *testing.T, pub *rsa.PublicKey, kid string, plain []byte) string {
	t.Helper()
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: kid},
		(&jose.EncrypterOptions{}).WithContentType("application/json"))
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

func tag(jwe string) string { return jwe[strings.LastIndexByte(jwe, '.')+1:] }

// verifiedLog reads a case's event log and verifies every SET: the
// platform's with the key of the JWKS the stand-in publishes, a
// destination's with its registered key (fetched from the API by kid), a
// sender's with its key. It returns the parsed SETs in log order.
func verifiedLog(t *testing.T, a *api, caseID string) []*standin.SET {
	t.Helper()
	var log struct {
		EventLog []string `json:"eventLog"`
	}
	a.getJSON("/cases/"+caseID+"/events", &log)
	var jwks struct {
		Keys []standin.JWK `json:"keys"`
	}
	a.getJSON(shared.setup.JWKSURL, &jwks)
	var out []*standin.SET
	for i, s := range log.EventLog {
		set, err := standin.ParseSET(s)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var key standin.JWK
		switch {
		case set.Claims.Iss == standin.PlatformIssuer:
			for _, k := range jwks.Keys {
				if k.Kid == set.Kid {
					key = k
				}
			}
		case set.Claims.Iss == shared.setup.Sender.ClientID:
			key = *shared.setup.Sender.SigningKey
		default:
			a.getJSON("/destinations/"+set.Claims.Iss+"/keys/"+set.Kid, &key)
		}
		pub, err := key.RSAPublic()
		if err != nil {
			t.Fatalf("event %d (%s, kid %s): %v", i, set.Event, set.Kid, err)
		}
		if err := set.Verify(pub); err != nil {
			t.Fatalf("event %d (%s): %v", i, set.Event, err)
		}
		if set.CaseID != caseID {
			t.Fatalf("event %d: txn %s in the log of case %s", i, set.Claims.Txn, caseID)
		}
		out = append(out, set)
	}
	return out
}

func eventNames(sets []*standin.SET) []string {
	var names []string
	for _, s := range sets {
		names = append(names, strings.TrimPrefix(s.Event, "https://schema.fitko.de/fit-connect/events/"))
	}
	return names
}

// control calls one of the stand-in process's fault hooks.
func control(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, shared.setup.Control.URL+path, bytes.NewReader(b))
	req.Header.Set("X-Standin-Control", shared.setup.Control.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("control %s: %d", path, resp.StatusCode)
	}
}

func submissionState(t *testing.T, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, shared.setup.Control.URL+"/submissions/"+id, nil)
	req.Header.Set("X-Standin-Control", shared.setup.Control.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.State
}

// destinationSET signs an event about a submission as destination d does.
func destinationSET(t *testing.T, d standin.DestinationSetup, key standin.JWK, claims map[string]any) string {
	t.Helper()
	s, err := standin.SignSET(privateKey(t, key), key.Kid, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signWith signs claims as a SET with key under the given kid and typ (for
// the malformed cases).
func signWith(t *testing.T, key standin.JWK, kid, typ string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS512, Key: privateKey(t, key)},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// callbacks are the stand-in process's callback attempts.
func callbacks(t *testing.T) []standin.CallbackRecord {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, shared.setup.Control.URL+"/callbacks", nil)
	req.Header.Set("X-Standin-Control", shared.setup.Control.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []standin.CallbackRecord
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
