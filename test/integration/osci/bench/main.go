// Command bench measures the OSCI receive path (issue 13): N messages of 1 MiB,
// content signed (rsa-sha256) and encrypted (AES-256-GCM, RSA-OAEP) for the
// authority, forwarded as acceptDelivery by 64 concurrent dialogs to the
// gateway's passive recipient, which stores the raw message, decrypts, verifies,
// stores the plaintext, appends MessageReceived durably and only then answers.
// Side by side in the same run: the raw sqlitelog append rate of as many
// receipt-sized events. The receiver runs in a child process of its own, so that
// its CPU seconds per message and its peak RSS (VmHWM) are the gateway's alone,
// not the senders'.
//
//	go run ./test/integration/osci/bench -n 256 -dialogs 64 -json osci.json
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

func main() {
	n := flag.Int("n", 256, "messages (and raw events)")
	dialogs := flag.Int("dialogs", 64, "concurrent dialogs (senders) and raw appenders")
	size := flag.Int("size", 1<<20, "attachment size in bytes")
	certs := flag.String("certs", "testdata/osci/zertifikate", "the sample PKI's directory")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed afterwards)")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	java := flag.String("java", "java", "the JVM for -library-cp")
	libCP := flag.String("library-cp", "", "classpath of the Java peer (test/integration/osci/lib.sh's OSCI_PEER_CP): also run the library's decrypt-bench over the same messages; bench.sh sets it")
	role := flag.String("role", "", "internal: \"receiver\" runs the gateway side in this process")
	flag.Parse()
	var err error
	if *role == "receiver" {
		err = receive(*certs, *dir)
	} else {
		err = run(context.Background(), opts{n: *n, dialogs: *dialogs, size: *size, certs: *certs, dir: *dir, jsonOut: *jsonOut, java: *java, libCP: *libCP})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "osci bench:", err)
		os.Exit(1)
	}
}

type result struct {
	count   int
	elapsed time.Duration
	lat     []time.Duration
}

func (r result) rate() float64 { return float64(r.count) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	s := slices.Clone(r.lat)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

type opts struct {
	n, dialogs, size                 int
	certs, dir, jsonOut, java, libCP string
}

func run(ctx context.Context, o opts) error {
	n, dialogs, size, certs, dir, jsonOut := o.n, o.dialogs, o.size, o.certs, o.dir, o.jsonOut
	if dir == "" {
		d, err := os.MkdirTemp("", "poststelle-oscibench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if _, err := os.Stat(filepath.Join(certs, "bob_cipher_4096.p12")); err != nil {
		return fmt.Errorf("the sample PKI (run from the repository's root or set -certs): %w", err)
	}
	pinFile, err := writePin(dir)
	if err != nil {
		return err
	}
	p, err := loadParties(certs, pinFile)
	if err != nil {
		return err
	}
	frames, bytesOnWire, err := prepareAll(ctx, p, n, size, dialogs, dir)
	if err != nil {
		return err
	}
	raw, err := rawAppend(ctx, filepath.Join(dir, "raw"), n, dialogs)
	if err != nil {
		return fmt.Errorf("raw append: %w", err)
	}
	rx, err := startReceiver(certs, filepath.Join(dir, "gateway"))
	if err != nil {
		return err
	}
	before, err := rx.stat()
	if err != nil {
		return errors.Join(err, rx.stop())
	}
	recv, err := sendAll(ctx, p.supplier(), rx.url, frames, dialogs, dir)
	after, serr := rx.stat()
	if err = errors.Join(err, serr, rx.stop()); err != nil {
		return err
	}
	if after.recorded-before.recorded != int64(n) || after.problems != 0 {
		return fmt.Errorf("the gateway recorded %d receipts (want %d), %d with problems", after.recorded-before.recorded, n, after.problems)
	}
	cpuPer := (after.cpu - before.cpu) / time.Duration(n)
	var lib []libraryRun
	if o.libCP != "" {
		if lib, err = libraryBench(o.java, o.libCP, certs, filepath.Dir(frames[0]), dir, n); err != nil {
			return err
		}
	}
	mib := float64(size) / (1 << 20)
	fmt.Printf("%-52s %9s %9s %9s %9s\n", "", "msgs/s", "MiB/s", "p50", "p99")
	fmt.Printf("%-52s %9.0f %9s %9s %9s\n", fmt.Sprintf("raw sqlitelog append (%d appenders)", dialogs), raw.rate(), "",
		raw.pct(0.5).Round(10*time.Microsecond), raw.pct(0.99).Round(10*time.Microsecond))
	label := fmt.Sprintf("OSCI receive, %s MiB encrypted+signed (%d dialogs)", trimFloat(mib), dialogs)
	fmt.Printf("%-52s %9.1f %9.1f %9s %9s\n", label, recv.rate(), recv.rate()*mib,
		recv.pct(0.5).Round(time.Millisecond), recv.pct(0.99).Round(time.Millisecond))
	fmt.Printf("gateway CPU per message: %s (user+sys of the receiving process; %.1f msgs/s per core)\n",
		cpuPer.Round(10*time.Microsecond), 1/cpuPer.Seconds())
	for _, l := range lib {
		fmt.Printf("Java library decrypt+verify, %d thread(s): %.1f msgs/s, CPU per message %.2fms (%.2f× ours), %d of %d signatures valid\n",
			l.Threads, l.MessagesPerSecond, l.CPUPerMessageMs, l.CPUPerMessageMs/(float64(cpuPer.Microseconds())/1000), l.ValidSignatures, n)
	}
	fmt.Printf("gateway peak RSS (VmHWM): %.1f MiB (goal < 150 MB = 143.1 MiB)\n", float64(after.hwm)/1024)
	fmt.Printf("%d messages, %.1f MiB on the wire each; ratio OSCI/raw: %.2f%%\n", n, float64(bytesOnWire)/float64(n)/(1<<20), 100*recv.rate()/raw.rate())
	if jsonOut == "" {
		return nil
	}
	fig := figures.New("osci")
	fig.Params["messages"], fig.Params["dialogs"], fig.Params["size"] = fmt.Sprint(n), fmt.Sprint(dialogs), fmt.Sprint(size)
	fig.Add("raw", fmt.Sprintf("raw sqlitelog append (%d appenders)", dialogs), raw.rate(), "msg/s").Latency(raw.pct(0.5), raw.pct(0.99))
	fig.Add("receive", label, recv.rate(), "msg/s").Latency(recv.pct(0.5), recv.pct(0.99))
	fig.Add("receive-mib", "OSCI receive throughput", recv.rate()*mib, "MiB/s")
	fig.Add("cpu-per-message", "gateway CPU per message (user+sys)", float64(cpuPer.Microseconds())/1000, "ms")
	if len(lib) > 0 {
		best := lib[0]
		for _, l := range lib {
			fig.Add(fmt.Sprintf("library-%dt", l.Threads), fmt.Sprintf("Java library decrypt+verify (%d threads)", l.Threads), l.MessagesPerSecond, "msg/s")
			fig.Add(fmt.Sprintf("library-%dt-valid", l.Threads), fmt.Sprintf("content signatures the library found valid (%d threads)", l.Threads), float64(l.ValidSignatures), "")
			fig.Add(fmt.Sprintf("library-%dt-cpu-per-message", l.Threads), fmt.Sprintf("Java library CPU per message (%d threads)", l.Threads), l.CPUPerMessageMs, "ms")
			if l.CPUPerMessageMs < best.CPUPerMessageMs {
				best = l
			}
		}
		// The library's best run is the one the per-core goal is measured against.
		fig.Add("library-cpu-per-message", "Java library CPU per message (its best run)", best.CPUPerMessageMs, "ms")
	}
	fig.Add("peak-rss", "gateway peak RSS (VmHWM)", float64(after.hwm)/1024, "MiB")
	return figures.Write(jsonOut, fig)
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

// prepareAll writes the n frames to files once, before anything is measured.
func prepareAll(ctx context.Context, p *parties, n, size, workers int, dir string) ([]string, int64, error) {
	fdir := filepath.Join(dir, "frames")
	if err := os.MkdirAll(fdir, 0o750); err != nil {
		return nil, 0, err
	}
	frames := make([]string, n)
	for i := range frames {
		frames[i] = filepath.Join(fdir, fmt.Sprintf("m%06d", i))
	}
	_, err := parallel(n, min(workers, 2), func(i int) error { return p.prepare(ctx, i, size, fdir, frames[i]) })
	if err != nil {
		return nil, 0, err
	}
	var total int64
	for _, f := range frames {
		st, err := os.Stat(f)
		if err != nil {
			return nil, 0, err
		}
		total += st.Size()
	}
	return frames, total, nil
}

// rawAppend appends n receipt events of the size an OSCI delivery's receipt has.
func rawAppend(ctx context.Context, dir string, n, workers int) (result, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return result{}, err
	}
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return result{}, err
	}
	defer l.Close()
	in := &gateway.Intake{Log: l}
	rec := sampleReceipt()
	return parallel(n, workers, func(i int) error {
		_, err := in.Record(ctx, gateway.DefaultTenant, fmt.Sprintf("egvp:raw-%d", i), rec)
		return err
	})
}

// sampleReceipt is about the size of an OSCI delivery's receipt: the originator's
// two certificates in the metadata make up most of it.
func sampleReceipt() *gateway.MessageReceived {
	cert := strings.Repeat("TUlJ", 600)
	return &gateway.MessageReceived{Channel: gateway.ChannelEGVP, SenderMessageID: "YmVuY2gtMDAwMDAx",
		From: gateway.Address{Address: "osci:" + strings.Repeat("ab", 32), Name: "alice"}, Subject: "Antrag", ReceivedAt: time.Now().UTC(),
		Raw:   blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 1 << 20},
		Parts: []gateway.Part{{Path: "e1.1", MediaType: "application/octet-stream", Kind: "attachment", Blob: blob.Ref{SHA256: strings.Repeat("cd", 32), Size: 1 << 20}}},
		Metadata: map[string]string{"osci.messageType": "acceptDelivery", "osci.originatorCipherCertificate": cert,
			"osci.originatorSignatureCertificate": cert, "osci.contentSignatures": "coco: valid (alice)"},
		Transport: gateway.TransportEvidence{RemoteAddr: "127.0.0.1:40000", Coordinates: "YmVuY2gtMDAwMDAx"}}
}

// sendAll posts every frame, dialogs at a time, and reads each answer as the
// intermediary would (decrypted, its signature checked): a message counts once
// its positive acknowledgement is read.
func sendAll(ctx context.Context, manager osci.Supplier, url string, frames []string, dialogs int, dir string) (result, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: dialogs, DisableCompression: true}}
	spool := osci.DirSpool{Dir: dir}
	return parallel(len(frames), dialogs, func(i int) error {
		f, err := os.Open(frames[i])
		if err != nil {
			return err
		}
		defer f.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, f)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("posting message %d: %w", i, err)
		}
		defer resp.Body.Close()
		back, err := manager.ReadRequest(ctx, resp.Body, spool)
		if err != nil {
			return fmt.Errorf("reading the answer to message %d: %w", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if back.Type() != osci.ResponseToAcceptDelivery || back.Signature == nil || !back.Signature.Valid() {
			return fmt.Errorf("message %d: answered %s", i, back.Type())
		}
		if fb := back.Envelope.Feedback(); len(fb) == 0 || fb[0].Code.Error() {
			return fmt.Errorf("message %d: not accepted: %v", i, fb)
		}
		return nil
	})
}

type receiverStat struct {
	cpu                     time.Duration
	hwm, recorded, problems int64
}

type receiver struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	url string
	mu  sync.Mutex
}

// startReceiver runs this binary again as the gateway side.
func startReceiver(certs, dir string) (*receiver, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-role", "receiver", "-certs", certs, "-dir", dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the receiver: %w", err)
	}
	r := &receiver{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	if !r.out.Scan() {
		return nil, errors.Join(errors.New("the receiver did not start"), r.stop())
	}
	addr, ok := strings.CutPrefix(r.out.Text(), "listening ")
	if !ok {
		return nil, errors.Join(fmt.Errorf("the receiver said %q", r.out.Text()), r.stop())
	}
	r.url = "http://" + addr + "/"
	return r, nil
}

func (r *receiver) stat() (receiverStat, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := io.WriteString(r.in, "stat\n"); err != nil {
		return receiverStat{}, err
	}
	if !r.out.Scan() {
		return receiverStat{}, errors.New("the receiver stopped")
	}
	var s receiverStat
	var ns int64
	if _, err := fmt.Sscanf(r.out.Text(), "cpu %d hwm %d recorded %d problems %d", &ns, &s.hwm, &s.recorded, &s.problems); err != nil {
		return s, fmt.Errorf("the receiver said %q: %w", r.out.Text(), err)
	}
	s.cpu = time.Duration(ns)
	return s, nil
}

func (r *receiver) stop() error {
	r.in.Close()
	if err := r.cmd.Wait(); err != nil {
		return fmt.Errorf("the receiver: %w", err)
	}
	return nil
}

// parallel runs n operations on the given number of workers and measures
// each operation's latency.
func parallel(n, workers int, op func(i int) error) (result, error) {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return result{count: n, elapsed: time.Since(start), lat: lat}, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
