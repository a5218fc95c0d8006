// Command bench measures the SMTP receiver's memory under large messages:
// it starts the receiver (SQLite log, blob directory, as serve wires it)
// in a child process, sends it concurrent messages of about 30 MB over
// SMTP and reports the child's peak resident set (VmHWM from
// /proc/PID/status) and the throughput, for plain messages as the
// baseline and for S/MIME opaque signed-data (application/pkcs7-mime)
// and multipart/signed messages, side by side. The signed messages are
// signed at run time with a throwaway key.
//
// The serve target does the same against the real `poststelle serve`
// (built into the working directory, configured with the receiver, the
// demo office and verification, the bench's certificate as trust anchor):
// after sending, it polls `poststelle log replay --type SignaturesVerified`
// until every message is verified, checks that every signature came out
// TOTAL_PASSED, and reads serve's VmHWM then, so the peak covers intake
// and verification together.
//
//	go run ./channels/smtp/bench -senders 16 -size 30000000
//	go run ./channels/smtp/bench -targets serve -verification 'memory_budget: 64MiB'
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"go.mozilla.org/pkcs7"

	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

func main() {
	serve := flag.String("serve", "", "internal: run the receiver with its data in this directory")
	senders := flag.Int("senders", 16, "concurrent SMTP senders, one message each per round")
	size := flag.Int("size", 30_000_000, "message size in bytes")
	rounds := flag.Int("rounds", 1, "rounds of messages per kind")
	kinds := flag.String("kinds", "plain,opaque,multipart-signed", "message kinds to send, in order")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed afterwards)")
	targets := flag.String("targets", "receiver,serve", "what to measure: the receiver alone, the real poststelle serve, or both")
	verification := flag.String("verification", "", "extra YAML lines for serve's verification section")
	flag.Parse()
	var err error
	if *serve != "" {
		err = runServer(*serve, *senders)
	} else {
		err = run(*senders, *size, *rounds, strings.Split(*kinds, ","), strings.Split(*targets, ","), *verification, *dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runServer is the child: the receiver on a free loopback port, announced
// on stdout, until stdin closes or a signal arrives.
func runServer(dir string, senders int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	rec := &countingRecorder{next: &gateway.Intake{Log: l}}
	srv, err := smtp.New(smtp.Config{Listen: "127.0.0.1:0", Hostname: "bench", AcceptAll: true, MaxConnections: senders + 4},
		gateway.IntakeDeps{Intake: rec, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	fmt.Printf("listening %s\n", srv.Addr())
	err = srv.Run(ctx)
	fmt.Printf("recorded %d messages, %d parts, %d PDF attachments found, %d problems\n", rec.messages, rec.parts, rec.pdfs, rec.problems)
	return err
}

// countingRecorder counts what the receiver records, so that the parent
// can tell the messages were understood and not merely stored.
type countingRecorder struct {
	next                            gateway.Recorder
	mu                              sync.Mutex
	messages, parts, pdfs, problems int
}

func (c *countingRecorder) Record(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
	c.mu.Lock()
	c.messages++
	c.parts += len(m.Parts)
	c.problems += len(m.Problems)
	for _, p := range m.Parts {
		c.problems += len(p.Problems)
		if p.MediaType == "application/pdf" && p.Kind == "attachment" {
			c.pdfs++
		}
	}
	c.mu.Unlock()
	return c.next.Record(ctx, tenant, key, m)
}

type result struct {
	target   string
	kind     string
	messages int
	bytes    int64
	elapsed  time.Duration
	idleKiB  int64
	peakKiB  int64
}

func run(senders, size, rounds int, kinds, targets []string, verification, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "poststelle-smtp-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	signer, err := newSigner()
	if err != nil {
		return err
	}
	var exe string
	for _, t := range targets {
		switch t {
		case "receiver":
		case "serve":
			if exe == "" {
				if exe, err = buildPoststelle(dir); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unknown target %q (receiver, serve)", t)
		}
	}
	var results []result
	for _, kind := range kinds {
		body, err := signer.message(kind, size)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for _, t := range targets {
			var r result
			if t == "serve" {
				r, err = measureServe(exe, filepath.Join(dir, "serve-"+kind), kind, body, senders, rounds, signer, verification)
			} else {
				r, err = measure(filepath.Join(dir, kind), kind, body, senders, rounds)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", t, kind, err)
			}
			r.target = t
			results = append(results, r)
		}
	}
	fmt.Printf("%d concurrent senders, messages of %d bytes, %d round(s)\n", senders, size, rounds)
	fmt.Printf("%-9s %-18s %6s %10s %8s %8s %12s %12s\n", "target", "kind", "msgs", "elapsed", "MB/s", "msgs/s", "idle RSS", "peak RSS")
	for _, r := range results {
		fmt.Printf("%-9s %-18s %6d %10s %8.1f %8.2f %9.1f MB %9.1f MB\n", r.target, r.kind, r.messages, r.elapsed.Round(10*time.Millisecond),
			float64(r.bytes)/1e6/r.elapsed.Seconds(), float64(r.messages)/r.elapsed.Seconds(),
			float64(r.idleKiB)/1024, float64(r.peakKiB)/1024)
	}
	fmt.Println("peak RSS is the process's VmHWM (receiver: the receiver alone; serve: poststelle serve until every")
	fmt.Println("message's SignaturesVerified is logged); target for the signed kinds: under 150 MB")
	return nil
}

// measure starts a fresh receiver, sends it senders×rounds copies of body
// (each with its own Message-ID, so none is a duplicate) and reads its
// peak RSS.
func measure(dir, kind string, body []byte, senders, rounds int) (result, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return result{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(exe, "-serve", dir, "-senders", strconv.Itoa(senders))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return result{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	out := bufio.NewReader(stdout)
	defer func() {
		stdin.Close()
		summary, _ := out.ReadString('\n')
		fmt.Fprintf(os.Stderr, "%s receiver: %s", kind, summary)
		cmd.Wait()
	}()
	line, err := out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		return result{}, fmt.Errorf("receiver did not start: %q %v", line, err)
	}
	idle, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := sendAll(addr, kind, senders, rounds, body); err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	peak, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	n := senders * rounds
	return result{kind: kind, messages: n, bytes: int64(n) * int64(len(body)), elapsed: elapsed, idleKiB: idle, peakKiB: peak}, nil
}

// sendAll runs senders concurrent SMTP sessions of rounds messages each.
func sendAll(addr, kind string, senders, rounds int, body []byte) error {
	var wg sync.WaitGroup
	errs := make([]error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[s] = sendRounds(addr, kind, s, rounds, body)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sendRounds(addr, kind string, sender, rounds int, body []byte) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.example.org"); err != nil {
		return err
	}
	for r := range rounds {
		if err := c.Mail("sender@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("poststelle@kreis.example", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Message-ID: <%s-%d-%d@bench.example.org>\r\n", kind, sender, r)
		if _, err := w.Write(body); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("sender %d round %d: %w", sender, r, err)
		}
	}
	return c.Quit()
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

type signer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newSigner() (*signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Poststelle Bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &signer{cert: cert, key: key}, nil
}

const envelopeHeader = "From: Sender <sender@example.org>\r\nTo: poststelle@kreis.example\r\nSubject: Bauantrag mit Plänen\r\nMIME-Version: 1.0\r\n"

// message builds the part of a message after its Message-ID, about size
// bytes in all.
func (s *signer) message(kind string, size int) ([]byte, error) {
	switch kind {
	case "plain":
		return append([]byte(envelopeHeader), entity(size-len(envelopeHeader))...), nil
	case "opaque":
		// base64 grows the CMS object by 4/3 plus line breaks.
		inner := entity(size*3/4 - 2048)
		der, err := s.sign(inner, false)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteString(envelopeHeader)
		b.WriteString("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n" +
			"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n")
		writeBase64(&b, der)
		return b.Bytes(), nil
	case "multipart-signed":
		inner := entity(size - 4096)
		der, err := s.sign(inner, true)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteString(envelopeHeader)
		b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig\"\r\n\r\n")
		b.WriteString("--sig\r\n")
		b.Write(inner)
		b.WriteString("\r\n--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n" +
			"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7s\r\n\r\n")
		writeBase64(&b, der)
		b.WriteString("--sig--\r\n")
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown kind %q (plain, opaque, multipart-signed)", kind)
}

func (s *signer) sign(content []byte, detached bool) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(s.cert, s.key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	if detached {
		sd.Detach()
	}
	return sd.Finish()
}

// entity is a MIME entity of about size bytes: a text body and a PDF-like
// attachment of random bytes in base64, as a scanned application is.
func entity(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Sehr geehrte Damen und Herren,\r\nanbei der Bauantrag mit allen Plänen.\r\n" +
		"--mix\r\nContent-Type: application/pdf; name=plaene.pdf\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=plaene.pdf\r\n\r\n")
	raw := make([]byte, max(0, (size-b.Len()-16)*3/4*76/78))
	rng := mrand.NewChaCha8([32]byte{1})
	rng.Read(raw)
	writeBase64(&b, raw)
	b.WriteString("--mix--\r\n")
	return b.Bytes()
}

func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
}
