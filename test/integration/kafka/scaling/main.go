// Command scaling measures what SMTP intake costs per CPU-second of the
// `poststelle serve` processes when an installation runs as 3 nodes on the
// 3-broker KRaft cluster (replication factor 3) against 1 node on 1 broker.
// Two cores cannot triple the wall-clock rate, so the measure is the cost:
// messages accepted per second of user+system CPU time of the serve
// processes (from /proc/PID/stat), counted from before the first message
// until every node lists every message in the demo office's queue and the
// processes are idle again, so that the verification, routing and the
// projections each node folds are in it, not only the receipt. The brokers'
// CPU is not counted.
//
// Every node has its own data directory (state database); the blob store
// is the local directory, one shared by the nodes of a configuration
// through a symbolic link in each data directory, so that a node can verify
// a message another node received without the S3 server's cost in the
// figure (the cluster test runs the S3 store; see README.md).
//
//	go run ./test/integration/kafka/scaling -single 127.0.0.1:19092 \
//	    -cluster 127.0.0.1:19200,127.0.0.1:19300,127.0.0.1:19400 -n 2000
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/internal/servetest"
)

func main() {
	single := flag.String("single", "127.0.0.1:19092", "the single broker (broker.sh)")
	cluster := flag.String("cluster", "127.0.0.1:19200,127.0.0.1:19300,127.0.0.1:19400", "the three brokers (cluster.sh brokers)")
	n := flag.Int("n", 2000, "messages per configuration and round")
	senders := flag.Int("senders", 16, "concurrent SMTP senders, spread over the nodes")
	size := flag.Int("size", 10<<10, "message size in bytes")
	rounds := flag.Int("rounds", 2, "alternate the two configurations this many times, so that a load change on a shared machine hits both")
	partitions := flag.Int("partitions", 6, "partitions of the topic")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed afterwards)")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	profiles := flag.String("profile", "", "take CPU profiles of every serve process (ops.pprof) over the measured span into `dir`, one file per node and slice")
	flag.Parse()
	cfg := setup{n: *n, senders: *senders, size: *size, partitions: *partitions, profiles: *profiles}
	if err := run(cfg, strings.Split(*single, ","), strings.Split(*cluster, ","), max(*rounds, 1), *dir, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "scaling:", err)
		os.Exit(1)
	}
}

type setup struct {
	n, senders, size, partitions int
	// profiles is where CPU profiles go; empty takes none.
	profiles string
}

// outcome is one configuration's run: messages, wall time, CPU time of the
// serve processes until the last 250 and until idle.
type outcome struct {
	msgs              int
	intake            time.Duration
	cpuIntake, cpuAll time.Duration
}

func (o outcome) add(p outcome) outcome {
	return outcome{o.msgs + p.msgs, o.intake + p.intake, o.cpuIntake + p.cpuIntake, o.cpuAll + p.cpuAll}
}

func (o outcome) perCPU() float64       { return float64(o.msgs) / o.cpuAll.Seconds() }
func (o outcome) perCPUIntake() float64 { return float64(o.msgs) / o.cpuIntake.Seconds() }
func (o outcome) rate() float64         { return float64(o.msgs) / o.intake.Seconds() }

func run(s setup, single, cluster []string, rounds int, dir, jsonOut string) error {
	if len(cluster) != 3 {
		return fmt.Errorf("-cluster: %d brokers, want 3", len(cluster))
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "poststelle-scaling-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin, err := servetest.Build(dir)
	if err != nil {
		return fmt.Errorf("build poststelle: %w", err)
	}
	var one, three outcome
	for r := range rounds {
		o, err := measure(bin, filepath.Join(dir, fmt.Sprintf("one%d", r)), s, 1, single, 1)
		if err != nil {
			return fmt.Errorf("1 node on 1 broker: %w", err)
		}
		one = one.add(o)
		o, err = measure(bin, filepath.Join(dir, fmt.Sprintf("three%d", r)), s, 3, cluster, 3)
		if err != nil {
			return fmt.Errorf("3 nodes on 3 brokers: %w", err)
		}
		three = three.add(o)
	}
	fmt.Printf("%-34s %10s %10s %14s %14s\n", "", "msgs/s", "CPU s", "msgs/CPU-s", "intake only")
	for _, l := range []struct {
		name string
		o    outcome
	}{{"1 node on 1 broker", one}, {"3 nodes on 3 brokers (RF 3)", three}} {
		fmt.Printf("%-34s %10.0f %10.1f %14.0f %14.0f\n", l.name, l.o.rate(), l.o.cpuAll.Seconds(), l.o.perCPU(), l.o.perCPUIntake())
	}
	fmt.Printf("ratio per CPU-second, 3 nodes / 1 node: %.0f%% (goal ≥ 80%%); %d messages of %d B per configuration in %d alternating rounds\n",
		100*three.perCPU()/one.perCPU(), s.n*rounds, s.size, rounds)
	if jsonOut == "" {
		return nil
	}
	fig := figures.New("scaling")
	fig.Params["messages"], fig.Params["senders"], fig.Params["size"] = fmt.Sprint(s.n*rounds), fmt.Sprint(s.senders), fmt.Sprint(s.size)
	fig.Params["rounds"], fig.Params["partitions"], fig.Params["blobs"] = fmt.Sprint(rounds), fmt.Sprint(s.partitions), "local, shared"
	fig.Add("one_per_cpu", "1 node on 1 broker, msgs per CPU-second", one.perCPU(), "msgs/CPU-s")
	fig.Add("three_per_cpu", "3 nodes on 3 brokers, msgs per CPU-second", three.perCPU(), "msgs/CPU-s")
	fig.Add("one_per_cpu_intake", "1 node, msgs per CPU-second until the last 250", one.perCPUIntake(), "msgs/CPU-s")
	fig.Add("three_per_cpu_intake", "3 nodes, msgs per CPU-second until the last 250", three.perCPUIntake(), "msgs/CPU-s")
	fig.Add("one_rate", "1 node, wall-clock intake", one.rate(), "msg/s")
	fig.Add("three_rate", "3 nodes, wall-clock intake", three.rate(), "msg/s")
	return figures.Write(jsonOut, fig)
}

// node is one serve process of a configuration.
type node struct {
	proc      *servetest.Process
	smtp, api string
	ops       string // the ops listener, for /debug/pprof
	dataDir   string
	user, pw  string
}

// measure starts k nodes on the brokers, sends s.n messages spread over
// them and returns what it cost.
func measure(bin, dir string, s setup, k int, brokers []string, rf int) (_ outcome, err error) {
	topic := fmt.Sprintf("scaling-%d-%d", k, time.Now().UnixNano())
	nodes, err := startNodes(bin, dir, k, brokers, rf, topic, s)
	defer func() {
		for _, n := range nodes {
			n.proc.Terminate()
		}
	}()
	if err != nil {
		return outcome{}, err
	}
	// What a node does once at start (joining the group, creating the
	// topic, its first checkpoint) is not the cost of a message.
	cpu0, err := waitIdle(nodes, 20*time.Second)
	if err != nil {
		return outcome{}, err
	}
	if s.profiles != "" {
		stop, err := profile(nodes, filepath.Join(s.profiles, filepath.Base(dir)))
		if err != nil {
			return outcome{}, err
		}
		defer func() {
			if perr := stop(); perr != nil && err == nil {
				err = perr
			}
		}()
	}
	start := time.Now()
	if err := send(nodes, topic, s); err != nil {
		return outcome{}, err
	}
	intake := time.Since(start)
	cpu1, err := cpuOf(nodes)
	if err != nil {
		return outcome{}, err
	}
	if err := waitQueued(nodes, s.n, 5*time.Minute); err != nil {
		return outcome{}, err
	}
	cpu2, err := waitIdle(nodes, 30*time.Second)
	if err != nil {
		return outcome{}, err
	}
	fmt.Fprintf(os.Stderr, "scaling: %d node(s): %d messages in %s, CPU %s until the last 250, %s until idle\n",
		k, s.n, intake.Round(time.Millisecond), (cpu1 - cpu0).Round(10*time.Millisecond), (cpu2 - cpu0).Round(10*time.Millisecond))
	return outcome{msgs: s.n, intake: intake, cpuIntake: cpu1 - cpu0, cpuAll: cpu2 - cpu0}, nil
}

// startNodes writes each node's configuration and starts the nodes one
// after the other: the first start makes the shared signing key.
func startNodes(bin, dir string, k int, brokers []string, rf int, topic string, s setup) ([]*node, error) {
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o750); err != nil {
		return nil, err
	}
	var nodes []*node
	for i := range k {
		addrs, err := freeAddrs(5)
		if err != nil {
			return nodes, err
		}
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		n := &node{smtp: addrs[0], api: addrs[1], ops: addrs[4], dataDir: filepath.Join(ndir, "data")}
		if err := os.MkdirAll(n.dataDir, 0o750); err != nil {
			return nodes, err
		}
		if err := os.Symlink(blobs, filepath.Join(n.dataDir, "blobs")); err != nil {
			return nodes, err
		}
		config := filepath.Join(ndir, "poststelle.yaml")
		conf := fmt.Sprintf(`data_dir: %s
log_level: warn
keys: {signing_key: %s}
eventstore:
  backend: kafka
  kafka: {brokers: [%s], topic: %s, partitions: %d, replication_factor: %d, group: %s}
smtp: {listen: %q, hostname: gw%d.kreis.example, accept_all: true, max_connections: %d}
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
ops: {listen: %q, pprof: %v}
`, n.dataDir, filepath.Join(dir, "keys", "gateway.key"), strings.Join(brokers, ", "), topic, s.partitions, rf, topic,
			n.smtp, i, s.senders+4, n.api, addrs[2], addrs[3], n.ops, s.profiles != "")
		if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
			return nodes, err
		}
		if n.proc, err = servetest.Launch(bin, config, n.api); err != nil {
			return nodes, fmt.Errorf("node %d: %w", i, err)
		}
		nodes = append(nodes, n)
		if err := n.login(); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

func (n *node) login() error {
	raw, err := os.ReadFile(filepath.Join(n.dataDir, "demo-credentials.txt"))
	if err != nil {
		return fmt.Errorf("demo login: %w", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "user="); ok {
			n.user = v
		}
		if v, ok := strings.CutPrefix(l, "password="); ok {
			n.pw = v
		}
	}
	if n.user == "" || n.pw == "" {
		return errors.New("demo login: no user or password in demo-credentials.txt")
	}
	return nil
}

// has reports whether the demo office's queue at n holds at least count
// messages: the queue is dense from 1, so message count exists then.
func (n *node) has(ctx context.Context, count int) bool {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/offices/demo/messages?since=%d&limit=1", n.api, count-1), nil)
	req.SetBasicAuth(n.user, n.pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"seq"`)
}

func waitQueued(nodes []*node, count int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for _, n := range nodes {
		for !n.has(ctx, count) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s: the demo queue does not list %d messages within %s", n.api, count, within)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// waitIdle waits until the serve processes together use less than 2 % of
// a core over a second, and returns their CPU time then.
func waitIdle(nodes []*node, within time.Duration) (time.Duration, error) {
	prev, err := cpuOf(nodes)
	if err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(within); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		cur, err := cpuOf(nodes)
		if err != nil {
			return 0, err
		}
		if cur-prev < 20*time.Millisecond {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil // still busy: count what was spent so far
}

// send delivers s.n messages over s.senders persistent SMTP sessions,
// sender c talking to node c mod k.
func send(nodes []*node, tag string, s setup) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, s.senders)
	for c := range s.senders {
		wg.Go(func() {
			cl, err := gosmtp.Dial(nodes[c%len(nodes)].smtp)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Quit()
			if err := cl.Hello("bench.example.org"); err != nil {
				errs <- err
				return
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= s.n {
					return
				}
				if err := cl.SendMail("sender@example.org", []string{"poststelle@kreis.example"}, bytes.NewReader(message(tag, i, s.size))); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// message builds a distinct text message of about size bytes, tagged with
// the run's topic so that runs on one broker never share a Message-ID.
func message(tag string, i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender <sender@example.org>\r\nTo: poststelle@kreis.example\r\nSubject: Antrag %d\r\n"+
		"Message-ID: <%s-%d@bench.example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, tag, i)
	line := "Sehr geehrte Damen und Herren, hiermit beantrage ich die Genehmigung.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String()[:size-2] + "\r\n")
}

// cpuOf sums the user and system CPU time of the nodes' processes.
func cpuOf(nodes []*node) (time.Duration, error) {
	var sum time.Duration
	for _, n := range nodes {
		d, err := procCPU(n.proc.PID())
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on (the kernel scales to it whatever HZ is).
const clockTick = 10 * time.Millisecond

// procCPU reads utime+stime of the process (all its threads) from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name in parentheses may hold spaces; fields follow it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: no command name in /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: %d fields in /proc/%d/stat", pid, len(f), pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// profileSlice is the length of each CPU profile a node is asked for; the
// slices of a node cover the measured span back to back (pprof merges them).
const profileSlice = 5 * time.Second

// profile takes CPU profiles of every node in slices of profileSlice into
// dir/nodeI-SEQ.pprof until the returned stop is called; stop waits for the
// slice under way, so that the profiles cover the measured span.
func profile(nodes []*node, dir string) (stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-done:
					return
				default:
				}
				if err := n.profileSlice(filepath.Join(dir, fmt.Sprintf("node%d-%03d.pprof", i, seq))); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	return func() error {
		close(done)
		wg.Wait()
		return errors.Join(errs...)
	}, nil
}

// profileSlice writes one CPU profile of profileSlice to file.
func (n *node) profileSlice(file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.ops, int(profileSlice.Seconds()))
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profile of %s: %w", n.ops, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile of %s: %s", n.ops, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("profile of %s: %w", n.ops, err)
	}
	return os.WriteFile(file, b, 0o600)
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
