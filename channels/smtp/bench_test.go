package smtp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/packblob"
	"github.com/poststelle/poststelle/gateway"
)

const benchSenders = 16

// benchMessage is a distinct text message of 10 KiB.
func benchMessage(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Antrag %d\r\n"+
		"Message-ID: <%d@bench.example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i)
	for b.Len() < 10<<10 {
		b.WriteString("Sehr geehrte Damen und Herren, hiermit beantrage ich die Genehmigung.\r\n")
	}
	return []byte(b.String()[:10<<10-2] + "\r\n")
}

// runParallel runs b.N operations on benchSenders goroutines and reports
// messages per second and the p99 latency of one operation.
func runParallel(b *testing.B, op func(worker, i int) error) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := range benchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// BenchmarkSMTPIntake measures receive-to-durable: from MAIL FROM to the
// 250 that follows the durable append, 10 KiB messages, 16 senders.
func BenchmarkSMTPIntake(b *testing.B) {
	benchIntake(b, nil)
}

// BenchmarkSMTPIntakePacks is BenchmarkSMTPIntake on the pack store (the
// default since packs), beside it: the raw message and its part share
// fsyncs with the other senders' blobs.
func BenchmarkSMTPIntakePacks(b *testing.B) {
	s, err := packblob.Open(context.Background(), packblob.Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchIntake(b, s)
}

// benchIntake runs the intake benchmark; blobs nil keeps the fixture's
// directory store.
func benchIntake(b *testing.B, blobs gateway.BlobStore) {
	f := start(b, func(c *Config, d *gateway.IntakeDeps) {
		c.AcceptAll = true
		c.MaxConnections = benchSenders + 4
		if blobs != nil {
			d.Blobs = blobs
		}
	})
	clients := make([]*gosmtp.Client, benchSenders)
	for i := range clients {
		c, err := gosmtp.Dial(f.srv.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("bench.example.org"); err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = benchMessage(i)
	}
	runParallel(b, func(w, i int) error {
		c := clients[w]
		if err := c.Mail("sender@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("poststelle@kreis.example", nil); err != nil {
			return err
		}
		wc, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := wc.Write(msgs[i]); err != nil {
			return err
		}
		return wc.Close()
	})
}

// BenchmarkRawAppend is the baseline: the same number of receipt events
// appended to the log directly by 16 appenders.
func BenchmarkRawAppend(b *testing.B) {
	l := openLog(b, b.TempDir())
	defer l.Close()
	in := &gateway.Intake{Log: l}
	rec := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "sender@example.org"},
		To: []gateway.Address{{Address: "poststelle@kreis.example"}}, Subject: "Antrag", ReceivedAt: time.Now().UTC(),
		Raw:   blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 10240},
		Parts: []gateway.Part{{Path: "1", MediaType: "text/plain; charset=utf-8", Kind: "body", Blob: blob.Ref{SHA256: strings.Repeat("cd", 32), Size: 10000}}},
		Transport: gateway.TransportEvidence{RemoteAddr: "127.0.0.1:40000",
			Envelope: map[string]string{"mailFrom": "sender@example.org", "rcptTo": "poststelle@kreis.example"}}}
	runParallel(b, func(_, i int) error {
		_, err := in.Record(context.Background(), gateway.DefaultTenant, fmt.Sprintf("smtp:bench-%d", i), rec)
		return err
	})
}
