// Command bench measures the office side end to end on the embedded
// default: messages of 10 KiB are recorded (raw bytes into the blob store,
// MessageReceived into the SQLite log, as the SMTP adapter does), routed by
// 1,000 rules, and become visible to the office over Server-Sent Events; it
// reports messages per second and latency percentiles next to the raw append
// rate. The gateway is the one `poststelle serve` runs, built by
// internal/assembly from a configuration file (verification, replies and
// the office IMAP and submission servers included); only the SMTP receiver
// is left out, since the benchmark records through the intake itself. The
// integration tests run the poststelle binary instead.
//
//	go run ./office/officeapi/bench -n 3000 -rate 1000
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/assembly"
)

func main() {
	data := flag.String("data", "", "data directory (default: a temporary one, removed afterwards)")
	apiAddr := flag.String("api", "127.0.0.1:0", "office API listen address")
	n := flag.Int("n", 3000, "messages to send")
	rate := flag.Int("rate", 1000, "messages per second to offer (0: as fast as possible)")
	size := flag.Int("size", 10<<10, "message size in bytes")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	blockProfile := flag.String("blockprofile", "", "write a profile of where goroutines blocked to `file`")
	mutexProfile := flag.String("mutexprofile", "", "write a profile of mutex contention to `file`")
	flag.Parse()
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond / 10))
		defer writeProfile("block", *blockProfile)
	}
	if *mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
		defer writeProfile("mutex", *mutexProfile)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := *data
	if dir == "" {
		d, err := os.MkdirTemp("", "poststelle-bench-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fig := figures.New("sse")
	fig.Params["messages"], fig.Params["rate"], fig.Params["size"], fig.Params["rules"] = fmt.Sprint(*n), fmt.Sprint(*rate), fmt.Sprint(*size), "1000"
	if err := bench(ctx, dir, *apiAddr, *n, *rate, *size, logger, fig); err != nil {
		fail(err)
	}
	if *jsonOut != "" {
		if err := figures.Write(*jsonOut, fig); err != nil {
			fail(err)
		}
	}
}

// writeProfile writes one of the runtime's named profiles at the end of
// the run.
func writeProfile(name, path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// embedded is the gateway as `poststelle serve` builds it
// (internal/assembly) from a configuration file, with no SMTP receiver:
// the benchmark records messages through the gateway's intake itself.
type embedded struct {
	gw     *assembly.Gateway
	intake *gateway.Intake
	blobs  blob.Backend
	api    string
	cancel context.CancelFunc
	errc   chan error
}

func start(ctx context.Context, dir, officesFile, rulesFile, apiAddr string, logger *slog.Logger) (*embedded, error) {
	config := filepath.Join(dir, "poststelle.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `data_dir: %s
offices: %s
routing: {rules: %s}
office_api: {listen: "%s", webhook: {first_backoff: 100ms}}
office_imap: {listen: "127.0.0.1:0"}
smtp_submission: {listen: "127.0.0.1:0"}
`, dir, officesFile, rulesFile, apiAddr), 0o600); err != nil {
		return nil, err
	}
	cfg, err := assembly.LoadConfig(config)
	if err != nil {
		return nil, err
	}
	gw, err := assembly.Build(ctx, cfg, assembly.Deps{Logger: logger, Version: "bench"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &embedded{gw: gw, intake: gw.Intake(), blobs: gw.Blobs(), api: gw.OfficeAPIAddr().String(), cancel: cancel, errc: make(chan error, 1)}
	go func() { g.errc <- gw.Run(ctx) }()
	select {
	case <-gw.Running():
	case err := <-g.errc:
		cancel()
		gw.Close()
		return nil, fmt.Errorf("gateway stopped at start: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		<-g.errc
		gw.Close()
		return nil, errors.New("pipeline did not start")
	}
	return g, nil
}

// wait stops the gateway and closes its stores.
func (g *embedded) wait() error {
	g.cancel()
	err := <-g.errc
	return errors.Join(err, g.gw.Close())
}

// ruleSet writes 1,000 rules shaped like a large authority's, all
// unmatched by the benchmark messages except the final catch-all, and the
// offices they name.
func ruleSet(dir, token string) (officesFile, rulesFile string, err error) {
	var rules, offs strings.Builder
	rules.WriteString("rules:\n")
	offs.WriteString("offices:\n  - id: bench\n    members: [{user: bench, token_hash: \"" + offices.HashToken(token) + "\"}]\n")
	n := 0
	add := func(match, office string) {
		fmt.Fprintf(&rules, "  - id: r%04d\n    match: %s\n    offices: [%s]\n", n, match, office)
		fmt.Fprintf(&offs, "  - id: %s\n", office)
		n++
	}
	for i := range 350 {
		add(fmt.Sprintf("{recipient: [fb%d@stadt.example]}", i), fmt.Sprintf("fb%d", i))
	}
	for i := range 150 {
		add(fmt.Sprintf("{sender_domain: partner%d.example}", i), fmt.Sprintf("p%d", i))
	}
	for i := range 200 {
		add(fmt.Sprintf(`{file_number: ['\bA%d-\d{4}/\d{1,6}\b']}`, i), fmt.Sprintf("az%d", i))
	}
	for i := range 100 {
		add(fmt.Sprintf(`{subject: '(?i)thema %d\b'}`, i), fmt.Sprintf("t%d", i))
	}
	for i := range 100 {
		add(fmt.Sprintf("{channel: egvp, xjustiz_recipient: DE.Justiz.%d}", i), fmt.Sprintf("j%d", i))
	}
	for i := range 99 {
		add(fmt.Sprintf("{recipient_domain: amt%d.stadt.example}", i), fmt.Sprintf("d%d", i))
	}
	fmt.Fprintf(&rules, "  - id: catch-all\n    offices: [bench]\n")
	officesFile, rulesFile = filepath.Join(dir, "offices.yaml"), filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(officesFile, []byte(offs.String()), 0o600); err != nil {
		return "", "", err
	}
	return officesFile, rulesFile, os.WriteFile(rulesFile, []byte(rules.String()), 0o600)
}

func bench(ctx context.Context, dir, apiAddr string, n, rate, size int, logger *slog.Logger, fig *figures.Run) error {
	fmt.Printf("messages %d of %d bytes, offered rate %d/s, 1,000 rules (worst case: catch-all decides), the gateway as serve builds it on the embedded SQLite log\n", n, size, rate)
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	// Raw append rate first, on its own log: what the log alone sustains.
	if err := rawAppend(ctx, filepath.Join(dir, "raw"), n, body, logger, fig); err != nil {
		return err
	}
	token, err := offices.NewToken()
	if err != nil {
		return err
	}
	gdir := filepath.Join(dir, "gw")
	os.MkdirAll(gdir, 0o750)
	officesFile, rulesFile, err := ruleSet(gdir, token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, err := start(ctx, gdir, officesFile, rulesFile, apiAddr, logger)
	if err != nil {
		return err
	}
	sent := make([]time.Time, n)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	seen := make(chan struct{})
	sseReady := make(chan struct{})
	go func() {
		err := readEvents(ctx, g.api, token, sseReady, func(subject string) {
			i, err := strconv.Atoi(strings.TrimPrefix(subject, "bench "))
			if err != nil || i < 0 || i >= n {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, time.Since(sent[i]))
			if len(lat) == n {
				close(seen)
			}
		})
		if err != nil && ctx.Err() == nil {
			logger.Error("event stream", "err", err)
		}
	}()
	<-sseReady
	begin := time.Now()
	if err := offer(ctx, g, n, rate, body, sent, &mu); err != nil {
		return err
	}
	offered := time.Since(begin)
	select {
	case <-seen:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("only %d of %d messages reached the office", len(lat), n)
	}
	total := time.Since(begin)
	mu.Lock()
	slices.Sort(lat)
	mu.Unlock()
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("end to end (receive → routed → SSE):  offered %.0f msg/s, delivered %.0f msg/s; latency p50 %v  p90 %v  p99 %v  max %v\n",
		float64(n)/offered.Seconds(), float64(n)/total.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	fig.Add("offered", "offered", float64(n)/offered.Seconds(), "msg/s")
	fig.Add("delivered", "delivered over SSE", float64(n)/total.Seconds(), "msg/s").Latency(pct(0.50), pct(0.99))
	cancel()
	g.wait()
	return nil
}

// rawAppend measures recording alone: blob + MessageReceived, with the
// same concurrency the offer loop uses.
func rawAppend(ctx context.Context, dir string, n int, body []byte, logger *slog.Logger, fig *figures.Run) error {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	os.MkdirAll(dir, 0o750)
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: key, Logger: logger})
	if err != nil {
		return err
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	in := &gateway.Intake{Log: l}
	begin := time.Now()
	err = parallel(n, func(i int) error {
		_, err := record(ctx, in, blobs, i, body, "raw")
		return err
	})
	if err != nil {
		return err
	}
	d := time.Since(begin)
	fmt.Printf("raw append (blob + MessageReceived, %d appenders):  %.0f msg/s\n", appenders, float64(n)/d.Seconds())
	fig.Add("raw", fmt.Sprintf("raw append (blob + MessageReceived, %d appenders)", appenders), float64(n)/d.Seconds(), "msg/s")
	return nil
}

const appenders = 32

func parallel(n int, f func(i int) error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range appenders {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func record(ctx context.Context, in *gateway.Intake, blobs blob.Backend, i int, body []byte, prefix string) (gateway.Receipt, error) {
	raw := fmt.Appendf(nil, "From: buerger%d@example.org\r\nTo: post@stadt.example\r\nSubject: bench %d\r\nMessage-ID: <%s-%d@example.org>\r\n\r\n", i, i, prefix, i)
	raw = append(raw, body[:max(0, len(body)-len(raw))]...)
	ref, err := blobs.PutBytes(ctx, raw)
	if err != nil {
		return gateway.Receipt{}, err
	}
	return in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprintf("%s-%d", prefix, i)), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, SenderMessageID: fmt.Sprintf("<%s-%d@example.org>", prefix, i),
		From: gateway.Address{Address: fmt.Sprintf("buerger%d@example.org", i)}, To: []gateway.Address{{Address: "post@stadt.example"}},
		Subject: fmt.Sprintf("bench %d", i), ReceivedAt: time.Now().UTC(), Raw: ref,
		Parts: []gateway.Part{{Path: "1", MediaType: "text/plain", Kind: "body", Blob: ref}}})
}

// offer records messages at the offered rate; the clock for a message's
// latency starts when its recording starts.
func offer(ctx context.Context, g *embedded, n, rate int, body []byte, sent []time.Time, mu *sync.Mutex) error {
	begin := time.Now()
	return parallel(n, func(i int) error {
		if rate > 0 {
			if d := time.Until(begin.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		_, err := record(ctx, g.intake, g.blobs, i, body, "e2e")
		return err
	})
}

// readEvents follows the office's event stream.
func readEvents(ctx context.Context, api, token string, ready chan struct{}, got func(subject string)) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+api+"/offices/bench/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(ready)
		return err
	}
	defer resp.Body.Close()
	close(ready)
	if resp.StatusCode != 200 {
		return fmt.Errorf("event stream: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var m struct {
			Subject string `json:"subject"`
		}
		if json.Unmarshal([]byte(data), &m) == nil {
			got(m.Subject)
		}
	}
	return sc.Err()
}
