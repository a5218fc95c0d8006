//go:build integration

package kafka_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
)

// Environment of a subscriber child process.
const (
	envSubTopic  = "POSTSTELLE_SCALEOUT_TOPIC"
	envSubDB     = "POSTSTELLE_SCALEOUT_DB"
	envSubWorker = "POSTSTELLE_SCALEOUT_WORKER"
)

const scaleoutPartitions = 6

func openProjectionDB(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(20000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS effects (event_id TEXT PRIMARY KEY, worker TEXT NOT NULL, n INTEGER NOT NULL);
		CREATE TABLE IF NOT EXISTS positions (part INTEGER PRIMARY KEY, next INTEGER NOT NULL);
		CREATE TABLE IF NOT EXISTS skipped (worker TEXT NOT NULL, event_id TEXT NOT NULL)`)
	return db, err
}

// project is the projection every subscriber runs: it records the event's
// effect and the partition's next offset in one transaction. An event below
// the recorded position is a redelivery after a handover and changes
// nothing; an event above it would mean a lost event and fails.
func project(db *sql.DB, worker string) eventstore.Handler {
	return func(ctx context.Context, e eventstore.Event) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var next int64
		err = tx.QueryRowContext(ctx, `SELECT next FROM positions WHERE part = ?`, e.Position.Partition).Scan(&next)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		switch {
		case e.Position.Offset < next:
			if _, err := tx.ExecContext(ctx, `INSERT INTO skipped VALUES (?, ?)`, worker, e.ID); err != nil {
				return err
			}
			return tx.Commit()
		case e.Position.Offset > next:
			return fmt.Errorf("gap: partition %d at %d, event %s at %d", e.Position.Partition, next, e.ID, e.Position.Offset)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO effects VALUES (?, ?, 1) ON CONFLICT (event_id) DO UPDATE SET n = n + 1`, e.ID, worker); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO positions VALUES (?, ?) ON CONFLICT (part) DO UPDATE SET next = excluded.next`,
			e.Position.Partition, e.Position.Offset+1); err != nil {
			return err
		}
		return tx.Commit()
	}
}

func startFrom(db *sql.DB) eventstore.StartFunc {
	return func(ctx context.Context, p int32) (int64, error) {
		var next int64
		err := db.QueryRowContext(ctx, `SELECT next FROM positions WHERE part = ?`, p).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return next, err
	}
}

// subscriberChild is a subscriber process of TestScaleOut. It runs until its
// standard input closes (the parent ended) or it is killed.
func subscriberChild() {
	topic, dbPath, worker := os.Getenv(envSubTopic), os.Getenv(envSubDB), os.Getenv(envSubWorker)
	if topic == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	db, err := openProjectionDB(dbPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscriber db:", err)
		os.Exit(3)
	}
	l, err := kafkalog.Open(ctx, config(nil, topic, scaleoutPartitions))
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscriber open:", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	err = l.Subscribe(ctx, "projection", startFrom(db), project(db, worker))
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "subscriber", worker, ":", err)
		os.Exit(4)
	}
	l.Close()
	os.Exit(0)
}

type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

func startSubscriber(t *testing.T, topic, dbPath, worker string) *child {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSubTopic+"="+topic, envSubDB+"="+dbPath, envSubWorker+"="+worker)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("subscriber %s did not start", worker)
	}
	go io.Copy(io.Discard, stdout)
	return c
}

// TestScaleOut runs a projection in three subscriber processes of one group
// while events are appended, kills one of them mid-stream, and checks that
// every event's effect exists exactly once: the dead process's partitions
// move to the others, which resume from the positions stored with the read
// model.
func TestScaleOut(t *testing.T) {
	topic := uniqueTopic("scaleout")
	dbPath := filepath.Join(t.TempDir(), "projection.db")
	db, err := openProjectionDB(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	l, err := kafkalog.Open(ctx, config(t, topic, scaleoutPartitions))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var children []*child
	for i := range 3 {
		children = append(children, startSubscriber(t, topic, dbPath, fmt.Sprintf("w%d", i)))
	}

	const total = 1500
	appended := make(chan error, 1)
	go func() {
		for i := range total {
			e := eventstore.Event{ID: fmt.Sprintf("ev-%04d", i), Tenant: "t1", Stream: fmt.Sprintf("msg-%d", i%50),
				Type: "T", Version: 1, Data: []byte("x")}
			if _, err := l.Append(ctx, e); err != nil {
				appended <- err
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
		appended <- nil
	}()
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "a third of the effects", func() bool { return count(`SELECT count(*) FROM effects`) >= total/3 })
	killedAt := count(`SELECT count(*) FROM effects`)
	if err := children[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	children[0].cmd.Wait()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every effect", func() bool { return count(`SELECT count(*) FROM effects`) >= total })
	time.Sleep(500 * time.Millisecond) // let redeliveries, if any, land
	if n := count(`SELECT count(*) FROM effects`); n != total {
		t.Fatalf("%d effects, want %d", n, total)
	}
	if n := count(`SELECT count(*) FROM effects WHERE n != 1`); n != 0 {
		t.Fatalf("%d events took effect more than once", n)
	}
	rows, err := db.Query(`SELECT worker, count(*) FROM effects GROUP BY worker ORDER BY worker`)
	if err != nil {
		t.Fatal(err)
	}
	var dist []string
	for rows.Next() {
		var w string
		var n int
		rows.Scan(&w, &n)
		dist = append(dist, fmt.Sprintf("%s=%d", w, n))
	}
	rows.Close()
	t.Logf("killed w0 after %d effects; effects per worker: %s; redeliveries skipped: %d",
		killedAt, strings.Join(dist, " "), count(`SELECT count(*) FROM skipped`))
	if count(`SELECT count(DISTINCT worker) FROM effects`) < 2 {
		t.Fatal("the work was not shared")
	}
	// Every partition's position reached its end: nothing was skipped.
	for p := range int32(scaleoutPartitions) {
		end, _ := l.End(ctx, p)
		var next int64
		db.QueryRow(`SELECT next FROM positions WHERE part = ?`, p).Scan(&next)
		if next != end {
			t.Fatalf("partition %d: projection at %d, log end %d", p, next, end)
		}
	}
	for _, c := range children[1:] {
		c.stdin.Close()
	}
}
