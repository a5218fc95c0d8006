// Command bench measures the SMTP intake of the real `poststelle serve`
// binary (built here, started with a configuration file, the whole gateway
// running behind the receiver: routing, verification, projections) against
// the raw event log in one run: messages per second and the p99
// receive-to-durable latency (from MAIL FROM to the 250 that follows the
// durable append) for 10 KiB messages sent by concurrent go-smtp clients,
// side by side with the rate at which the same number of receipt-sized
// events is appended to an embedded log directly by as many appenders, and
// the ratio of the two.
//
//	go run ./test/integration/mail/bench -n 4000 -senders 16
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

func main() {
	n := flag.Int("n", 4000, "messages (and raw events)")
	senders := flag.Int("senders", 16, "concurrent SMTP senders and raw appenders")
	size := flag.Int("size", 10<<10, "message size in bytes")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed afterwards)")
	rounds := flag.Int("rounds", 3, "alternate raw and SMTP runs this many times, so that a load change on a shared machine hits both")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	blobs := flag.String("blobs", "", `the gateway's blobs section as YAML flow, e.g. "{max_packed_bytes: -1}" for a file per blob (default: the gateway's default)`)
	baseline := flag.String("baseline-blobs", "", `also run the SMTP intake with this blobs section in every round, beside the other two, and print it as a third row, e.g. "{max_packed_bytes: -1}"`)
	flag.Parse()
	if err := run(*n, *senders, *size, *rounds, *dir, *blobs, *baseline, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	count   int
	elapsed time.Duration
	lat     []time.Duration
}

func (r result) add(o result) result {
	return result{count: r.count + o.count, elapsed: r.elapsed + o.elapsed, lat: append(r.lat, o.lat...)}
}

func (r result) rate() float64 { return float64(r.count) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func run(n, senders, size, rounds int, dir, blobs, baseline, jsonOut string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "poststelle-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	rounds = max(rounds, 1)
	bin, err := servetest.Build(dir)
	if err != nil {
		return err
	}
	var raw, intake, before result
	for r := range rounds {
		per := n / rounds
		if r == rounds-1 {
			per = n - per*(rounds-1)
		}
		rr, err := rawAppend(filepath.Join(dir, fmt.Sprintf("raw%d", r)), per, senders)
		if err != nil {
			return fmt.Errorf("raw append: %w", err)
		}
		ir, err := smtpIntake(bin, filepath.Join(dir, fmt.Sprintf("smtp%d", r)), per, senders, size, blobs)
		if err != nil {
			return fmt.Errorf("smtp intake: %w", err)
		}
		raw, intake = raw.add(rr), intake.add(ir)
		if baseline != "" {
			br, err := smtpIntake(bin, filepath.Join(dir, fmt.Sprintf("base%d", r)), per, senders, size, baseline)
			if err != nil {
				return fmt.Errorf("smtp intake with blobs %s: %w", baseline, err)
			}
			before = before.add(br)
		}
	}
	fmt.Printf("%-44s %10s %10s %10s\n", "", "msgs/s", "p50", "p99")
	fmt.Printf("%-44s %10.0f %10s %10s\n", fmt.Sprintf("raw sqlitelog append (%d appenders)", senders), raw.rate(),
		raw.pct(0.5).Round(10*time.Microsecond), raw.pct(0.99).Round(10*time.Microsecond))
	fmt.Printf("%-44s %10.0f %10s %10s\n", fmt.Sprintf("poststelle serve SMTP, %d B (%d senders)", size, senders), intake.rate(),
		intake.pct(0.5).Round(10*time.Microsecond), intake.pct(0.99).Round(10*time.Microsecond))
	if baseline != "" {
		fmt.Printf("%-44s %10.0f %10s %10s\n", "  the same with blobs: "+baseline, before.rate(),
			before.pct(0.5).Round(10*time.Microsecond), before.pct(0.99).Round(10*time.Microsecond))
	}
	fmt.Printf("ratio SMTP/raw: %.0f%% (goal ≥ 50%%), %d messages each in %d alternating rounds\n", 100*intake.rate()/raw.rate(), n, rounds)
	if baseline != "" {
		fmt.Printf("ratio with blobs %s: %.0f%%; SMTP over it: %.2f×\n", baseline, 100*before.rate()/raw.rate(), intake.rate()/before.rate())
	}
	if jsonOut == "" {
		return nil
	}
	fig := figures.New("smtp")
	fig.Params["messages"], fig.Params["senders"] = fmt.Sprint(n), fmt.Sprint(senders)
	fig.Params["size"], fig.Params["rounds"] = fmt.Sprint(size), fmt.Sprint(rounds)
	fig.Add("raw", fmt.Sprintf("raw sqlitelog append (%d appenders)", senders), raw.rate(), "msg/s").Latency(raw.pct(0.5), raw.pct(0.99))
	fig.Add("serve", fmt.Sprintf("poststelle serve SMTP, %d B (%d senders)", size, senders), intake.rate(), "msg/s").Latency(intake.pct(0.5), intake.pct(0.99))
	if baseline != "" {
		fig.Add("serve-baseline-blobs", "the same with blobs: "+baseline, before.rate(), "msg/s").Latency(before.pct(0.5), before.pct(0.99))
	}
	return figures.Write(jsonOut, fig)
}

func openLog(dir string) (*sqlitelog.Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
}

// rawAppend appends n receipt events of realistic size, as the SMTP
// receiver would, from the given number of goroutines.
func rawAppend(dir string, n, workers int) (result, error) {
	l, err := openLog(dir)
	if err != nil {
		return result{}, err
	}
	defer l.Close()
	in := &gateway.Intake{Log: l}
	rec := sampleReceipt()
	return parallel(n, workers, func(i int) error {
		_, err := in.Record(context.Background(), gateway.DefaultTenant, fmt.Sprintf("smtp:raw-%d", i), rec)
		return err
	})
}

func sampleReceipt() *gateway.MessageReceived {
	return &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<m@example.org>",
		From: gateway.Address{Address: "sender@example.org"}, To: []gateway.Address{{Address: "poststelle@kreis.example"}},
		Subject: "Benchmark", ReceivedAt: time.Now().UTC(),
		Raw:   blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 10240},
		Parts: []gateway.Part{{Path: "1", MediaType: "text/plain", Kind: "body", Blob: blob.Ref{SHA256: strings.Repeat("cd", 32), Size: 9000}}},
		Transport: gateway.TransportEvidence{RemoteAddr: "127.0.0.1:40000",
			Envelope: map[string]string{"mailFrom": "sender@example.org", "rcptTo": "poststelle@kreis.example", "helo": "bench"}}}
}

// smtpIntake starts `poststelle serve` with its data in dir, sends n
// messages to its SMTP receiver and stops it again.
func smtpIntake(bin, dir string, n, senders, size int, blobs string) (result, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return result{}, err
	}
	addrs, err := freeAddrs(4)
	if err != nil {
		return result{}, err
	}
	smtpAddr, api := addrs[0], addrs[1]
	config := filepath.Join(dir, "poststelle.yaml")
	conf := fmt.Sprintf("data_dir: %s/data\nlog_level: warn\nsmtp: {listen: %q, hostname: bench, accept_all: true, max_connections: %d}\n"+
		"office_api: {listen: %q}\noffice_imap: {listen: %q}\nsmtp_submission: {listen: %q}\n", dir, smtpAddr, senders+4, api, addrs[2], addrs[3])
	if blobs != "" {
		conf += "blobs: " + blobs + "\n"
	}
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return result{}, err
	}
	proc, err := servetest.Launch(bin, config, api)
	if err != nil {
		return result{}, err
	}
	clients := make(chan *gosmtp.Client, senders)
	for range senders {
		c, err := gosmtp.Dial(smtpAddr)
		if err != nil {
			proc.Terminate()
			return result{}, err
		}
		if err := c.Hello("bench.example.org"); err != nil {
			proc.Terminate()
			return result{}, err
		}
		clients <- c
	}
	res, err := parallel(n, senders, func(i int) error {
		c := <-clients
		defer func() { clients <- c }()
		return c.SendMail("sender@example.org", []string{"poststelle@kreis.example"}, bytes.NewReader(message(i, size)))
	})
	for range senders {
		c := <-clients
		c.Quit()
	}
	return res, errors.Join(err, proc.Terminate())
}

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// message builds a distinct text message of about size bytes.
func message(i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender <sender@example.org>\r\nTo: poststelle@kreis.example\r\nSubject: Antrag %d\r\n"+
		"Message-ID: <%d@bench.example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i)
	line := "Sehr geehrte Damen und Herren, hiermit beantrage ich die Genehmigung.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String()[:size-2] + "\r\n")
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return result{count: n, elapsed: time.Since(start), lat: lat}, firstErr
}
