// Command bench measures the Kafka event log's durable append rate and its
// append-to-subscriber latency against a running broker, and prints them
// beside the figure of Kafka's own ProducerPerformance from the same run
// (passed in by run.sh).
//
//	go run ./test/integration/kafka/bench -brokers 127.0.0.1:19092 \
//	    -kafka-rate 85000 -kafka-line "200000 records sent, ..."
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "comma-separated broker addresses")
	partitions := flag.Int("partitions", 12, "partitions of the benchmark topics")
	size := flag.Int("size", 1024, "payload bytes per event")
	conc := flag.String("appenders", "1,64", "comma-separated appender counts")
	perAppender := flag.Int("seconds", 10, "seconds per measurement")
	skipE2E := flag.Bool("no-e2e", false, "skip the end-to-end measurement")
	kafkaRate := flag.Float64("kafka-rate", 0, "records/s of Kafka's ProducerPerformance in the same run")
	kafkaLine := flag.String("kafka-line", "", "ProducerPerformance's summary line")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measurements to this file")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	opts := options{skipE2E: *skipE2E, jsonOut: *jsonOut}
	if err := run(strings.Split(*brokers, ","), int32(*partitions), *size, *conc, time.Duration(*perAppender)*time.Second, *kafkaRate, *kafkaLine, opts); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	key      string // in the JSON figures
	name     string
	events   int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

type options struct {
	skipE2E bool
	jsonOut string
}

func run(brokers []string, partitions int32, size int, conc string, dur time.Duration, kafkaRate float64, kafkaLine string, opts options) error {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	cfg := func(topic string) kafkalog.Config {
		return kafkalog.Config{Brokers: brokers, Topic: topic, Partitions: partitions, Signer: key,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	ctx := context.Background()
	var results []result
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("appender count %q", f)
		}
		topic := fmt.Sprintf("bench-append-%d-%d", n, time.Now().UnixNano())
		l, err := kafkalog.Open(ctx, cfg(topic))
		if err != nil {
			return err
		}
		r, err := appendLoad(ctx, l, n, size, dur, nil)
		l.Close()
		if err != nil {
			return err
		}
		r.key, r.name = fmt.Sprintf("append%d", n), fmt.Sprintf("kafkalog Append, %d appender(s)", n)
		results = append(results, r)
	}
	var e2e result
	if !opts.skipE2E {
		var err error
		if e2e, err = endToEnd(ctx, cfg(fmt.Sprintf("bench-e2e-%d", time.Now().UnixNano())), size, dur); err != nil {
			return err
		}
	}

	fmt.Printf("\nKafka event log benchmark: %d-byte events, %d partitions, acks=all, brokers %s\n\n", size, partitions, strings.Join(brokers, ","))
	fmt.Printf("%-44s %12s %10s %10s %8s\n", "what", "events/s", "p50", "p99", "vs Kafka")
	if kafkaRate > 0 {
		fmt.Printf("%-44s %12.0f %10s %10s %8s\n", "Kafka ProducerPerformance (acks=all)", kafkaRate, "-", "-", "100%")
	}
	for _, r := range results {
		ratio := "-"
		if kafkaRate > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.rate()/kafkaRate)
		}
		fmt.Printf("%-44s %12.0f %10s %10s %8s\n", r.name, r.rate(), round(r.p50), round(r.p99), ratio)
	}
	if !opts.skipE2E {
		fmt.Printf("%-44s %12.0f %10s %10s %8s\n", e2e.name, e2e.rate(), round(e2e.p50), round(e2e.p99), "-")
	}
	if kafkaLine != "" {
		fmt.Printf("\nProducerPerformance: %s\n", kafkaLine)
	}
	best := slices.MaxFunc(results, func(a, b result) int { return int(a.rate() - b.rate()) })
	if kafkaRate > 0 {
		fmt.Printf("\nratio (best kafkalog / ProducerPerformance before): %.2f (goal >= 0.80)\n", best.rate()/kafkaRate)
	}
	fmt.Printf("best-kafkalog-rate %.0f\n", best.rate())
	if opts.jsonOut == "" {
		return nil
	}
	fig := figures.New("kafka")
	fig.Params["partitions"], fig.Params["size"], fig.Params["seconds"] = fmt.Sprint(partitions), fmt.Sprint(size), fmt.Sprint(dur.Seconds())
	fig.Params["brokers"] = strings.Join(brokers, ",")
	for _, r := range results {
		fig.Add(r.key, r.name, r.rate(), "events/s").Latency(r.p50, r.p99)
	}
	if !opts.skipE2E {
		fig.Add("e2e", e2e.name, e2e.rate(), "events/s").Latency(e2e.p50, e2e.p99)
	}
	return figures.Write(opts.jsonOut, fig)
}

func round(d time.Duration) string {
	return d.Round(10 * time.Microsecond).String()
}

// appendLoad runs n appenders for dur and returns the rate and the latency
// percentiles of Append. stamp, when set, writes the send time into payloads.
func appendLoad(ctx context.Context, l eventstore.Log, n, size int, dur time.Duration, stamp func([]byte)) (result, error) {
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	var seq atomic.Int64
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				i := seq.Add(1)
				data := make([]byte, size)
				if stamp != nil {
					stamp(data)
				}
				e := eventstore.Event{ID: "b-" + strconv.FormatInt(i, 10), Tenant: "bench", Stream: fmt.Sprintf("s-%d-%d", w, i%16),
					Type: "BenchEvent", Version: 1, Data: data}
				t0 := time.Now()
				if _, err := l.Append(ctx, e); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	elapsed := time.Since(start)
	p50, p99 := percentiles(lats)
	return result{events: len(lats), elapsed: elapsed, p50: p50, p99: p99}, nil
}

func percentiles(d []time.Duration) (time.Duration, time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)]
}

// endToEnd appends with 8 appenders through one log instance and subscribes
// through another (as a second process would), measuring the time from the
// start of Append to the handler.
func endToEnd(ctx context.Context, cfg kafkalog.Config, size int, dur time.Duration) (result, error) {
	w, err := kafkalog.Open(ctx, cfg)
	if err != nil {
		return result{}, err
	}
	defer w.Close()
	r, err := kafkalog.Open(ctx, cfg)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	sctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var lats []time.Duration
	subErr := make(chan error, 1)
	go func() {
		subErr <- r.Subscribe(sctx, "e2e", func(context.Context, int32) (int64, error) { return 0, nil },
			func(_ context.Context, e eventstore.Event) error {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(e.Data)))
				mu.Lock()
				lats = append(lats, time.Since(sent))
				mu.Unlock()
				return nil
			})
	}()
	time.Sleep(2 * time.Second) // let the subscriber join its group
	load, err := appendLoad(ctx, w, 8, max(size, 8), dur, func(b []byte) {
		binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
	})
	if err != nil {
		cancel()
		return result{}, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(lats)
		mu.Unlock()
		if n >= load.events || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-subErr
	mu.Lock()
	defer mu.Unlock()
	if len(lats) < load.events {
		return result{}, fmt.Errorf("end-to-end: subscriber saw %d of %d events", len(lats), load.events)
	}
	p50, p99 := percentiles(lats)
	return result{name: "append -> subscriber (8 appenders)", events: load.events, elapsed: load.elapsed, p50: p50, p99: p99}, nil
}
