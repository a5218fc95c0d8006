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
// The offer is open-loop: message i is due at i/rate seconds after the
// start whatever the earlier ones take, and its latency counts from when it
// was due, so a gateway that falls behind shows it in the latency rather
// than slowing the offer down. It reports the rate it offered in fact (the
// issue times), the rate intake acknowledged and the rate delivered over
// SSE, and samples how far each projection and pipeline handler lags
// behind the log, which names the stage that holds the backlog. -rates
// runs the same on a fresh gateway at each rate of a sweep.
//
//	go run ./office/officeapi/bench -n 3000 -rate 1000 -rates 200,400,700
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

	"github.com/prometheus/client_golang/prometheus"
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
	rate := flag.Int("rate", 1000, "messages per second to offer (0: as fast as possible, 32 appenders); the goal's figures")
	sweep := flag.String("rates", "", "comma-separated further rates to measure, each on a fresh gateway (a sweep, e.g. 200,400,700)")
	size := flag.Int("size", 10<<10, "message size in bytes")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the gateway runs (not the raw append) to `file`")
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
	rates, err := parseRates(*rate, *sweep)
	if err != nil {
		fail(err)
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
	if *sweep != "" {
		fig.Params["sweep"] = *sweep
	}
	fig.Params["offer"] = fmt.Sprintf("open-loop, up to %d in flight", maxInFlight)
	if err := bench(ctx, dir, *apiAddr, *n, rates, *size, *cpuProfile, logger, fig); err != nil {
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

// parseRates is the sweep's rates in ascending order with the goal's rate
// among them, once each.
func parseRates(goal int, sweep string) ([]int, error) {
	rates := []int{goal}
	for _, f := range strings.FieldsFunc(sweep, func(r rune) bool { return r == ',' || r == ' ' }) {
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive rate", f)
		}
		rates = append(rates, r)
	}
	if goal < 0 {
		return nil, errors.New("-rate: negative")
	}
	slices.Sort(rates)
	return slices.Compact(rates), nil
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

func bench(ctx context.Context, dir, apiAddr string, n int, rates []int, size int, cpuProfile string, logger *slog.Logger, fig *figures.Run) error {
	fmt.Printf("messages %d of %d bytes per rate, offered open-loop at %v/s, 1,000 rules (worst case: catch-all decides), the gateway as serve builds it on the embedded SQLite log\n", n, size, rates)
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	// Raw append rate first, on its own log: what the log alone sustains.
	if err := rawAppend(ctx, filepath.Join(dir, "raw"), n, body, logger, fig); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	goal := fig.Params["rate"]
	for _, rate := range rates {
		res, err := atRate(ctx, filepath.Join(dir, fmt.Sprintf("gw%d", rate)), apiAddr, n, rate, body, logger)
		if err != nil {
			return fmt.Errorf("at %d/s: %w", rate, err)
		}
		res.print(rate)
		if fmt.Sprint(rate) == goal {
			fig.Add("offered", "offered", res.offered, "msg/s")
			fig.Add("accepted", "acknowledged by intake", res.accepted, "msg/s")
			fig.Add("delivered", "delivered over SSE", res.delivered, "msg/s").Latency(res.p50, res.p99)
		}
		if rate > 0 {
			fig.Add(fmt.Sprintf("sweep%d_offered", rate), fmt.Sprintf("at %d/s: offered", rate), res.offered, "msg/s")
			fig.Add(fmt.Sprintf("sweep%d_delivered", rate), fmt.Sprintf("at %d/s: delivered over SSE", rate), res.delivered, "msg/s").Latency(res.p50, res.p99)
		}
	}
	return nil
}

// result is one rate's run on its own gateway.
type result struct {
	offered, accepted, delivered float64 // msg/s
	p50, p90, p99, max           time.Duration
	inFlight                     int // most recordings under way at once
	lags                         []lag
}

func (r result) print(rate int) {
	fmt.Printf("at %4d/s: offered %.0f msg/s, acknowledged %.0f msg/s, delivered over SSE %.0f msg/s; latency p50 %v  p90 %v  p99 %v  max %v; %d recordings in flight at most\n",
		rate, r.offered, r.accepted, r.delivered, r.p50.Round(time.Millisecond), r.p90.Round(time.Millisecond),
		r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond), r.inFlight)
	var b strings.Builder
	for i, l := range r.lags {
		if i == 6 || l.max == 0 {
			break
		}
		fmt.Fprintf(&b, " %s %d;", l.name, l.max)
	}
	if b.Len() > 0 {
		fmt.Printf("           most events behind the log at once:%s\n", strings.TrimSuffix(b.String(), ";"))
	}
}

// atRate offers n messages at rate to a fresh gateway in dir and waits
// until the office has seen them all over SSE.
func atRate(ctx context.Context, dir, apiAddr string, n, rate int, body []byte, logger *slog.Logger) (result, error) {
	token, err := offices.NewToken()
	if err != nil {
		return result{}, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return result{}, err
	}
	officesFile, rulesFile, err := ruleSet(dir, token)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, err := start(ctx, dir, officesFile, rulesFile, apiAddr, logger)
	if err != nil {
		return result{}, err
	}
	defer func() {
		cancel()
		g.wait()
	}()
	due := make([]time.Time, n)
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
			lat = append(lat, time.Since(due[i]))
			if len(lat) == n {
				close(seen)
			}
		})
		if err != nil && ctx.Err() == nil {
			logger.Error("event stream", "err", err)
		}
	}()
	<-sseReady
	lagCtx, stopLags := context.WithCancel(ctx)
	lags := make(chan []lag, 1)
	go func() { lags <- sampleLags(lagCtx, g.gw.Metrics().Registry()) }()
	begin := time.Now()
	o, err := offer(ctx, g, n, rate, body, due, &mu)
	if err != nil {
		stopLags()
		return result{}, err
	}
	select {
	case <-seen:
	case <-time.After(5 * time.Minute):
		stopLags()
		mu.Lock()
		defer mu.Unlock()
		return result{}, fmt.Errorf("only %d of %d messages reached the office", len(lat), n)
	}
	total := time.Since(begin)
	stopLags()
	mu.Lock()
	slices.Sort(lat)
	mu.Unlock()
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	return result{offered: o.offered, accepted: float64(n) / o.acked.Seconds(), delivered: float64(n) / total.Seconds(),
		p50: pct(0.50), p90: pct(0.90), p99: pct(0.99), max: lat[len(lat)-1], inFlight: o.inFlight, lags: <-lags}, nil
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

// maxInFlight bounds the recordings the open-loop offer has under way at
// once (each holds a message's bytes); when intake falls that far behind,
// the offer waits and the rate it reports drops below the nominal one.
const maxInFlight = 4096

// offered is what the offer loop did: the rate it issued messages at, how
// long until intake had acknowledged every one, and the most recordings
// under way at once.
type offered struct {
	offered  float64
	acked    time.Duration
	inFlight int
}

// offer records messages open-loop: message i is due at begin + i/rate and
// is issued then on a goroutine of its own (up to maxInFlight), whatever
// the earlier ones take; a late wake-up issues every message due by then.
// Its latency clock starts when it was due. Rate 0 offers as fast as
// appenders closed-loop recorders allow.
func offer(ctx context.Context, g *embedded, n, rate int, body []byte, due []time.Time, mu *sync.Mutex) (offered, error) {
	limit := maxInFlight
	if rate == 0 {
		limit = appenders
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	var inFlight, most int
	var fmu sync.Mutex
	begin := time.Now()
	for i := range n {
		at := time.Now()
		if rate > 0 {
			at = begin.Add(time.Duration(i) * time.Second / time.Duration(rate))
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
		}
		sem <- struct{}{}
		mu.Lock()
		due[i] = at
		mu.Unlock()
		fmu.Lock()
		inFlight++
		most = max(most, inFlight)
		fmu.Unlock()
		wg.Go(func() {
			defer func() {
				fmu.Lock()
				inFlight--
				fmu.Unlock()
				<-sem
			}()
			if _, err := record(ctx, g.intake, g.blobs, i, body, "e2e"); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	// The last message is due (n-1)/rate after the first; one more interval
	// makes a loop that kept up report the nominal rate.
	issued := time.Since(begin)
	if rate > 0 {
		issued += time.Second / time.Duration(rate)
	}
	wg.Wait()
	return offered{offered: float64(n) / issued.Seconds(), acked: time.Since(begin), inFlight: most}, first
}

// lag is the most events a projection or pipeline handler was behind the
// log at one sample.
type lag struct {
	name string
	max  int64
}

// sampleLags reads the projection and handler lag gauges every 100 ms
// until ctx ends and returns each one's maximum, largest first.
func sampleLags(ctx context.Context, reg prometheus.Gatherer) []lag {
	most := map[string]int64{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		fams, err := reg.Gather()
		if err == nil {
			for _, f := range fams {
				kind, ok := map[string]string{"poststelle_projection_lag_events": "projection", "poststelle_handler_lag_events": "handler"}[f.GetName()]
				if !ok {
					continue
				}
				sum := map[string]int64{} // over partitions
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == kind {
							sum[kind+" "+l.GetValue()] += int64(m.GetGauge().GetValue())
						}
					}
				}
				for k, v := range sum {
					most[k] = max(most[k], v)
				}
			}
		}
		select {
		case <-ctx.Done():
			out := make([]lag, 0, len(most))
			for k, v := range most {
				out = append(out, lag{k, v})
			}
			slices.SortFunc(out, func(a, b lag) int {
				if a.max != b.max {
					return int(b.max - a.max)
				}
				return strings.Compare(a.name, b.name)
			})
			return out
		case <-tick.C:
		}
	}
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
