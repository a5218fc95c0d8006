package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/poststelle/poststelle/channels/oscichannel"
	"github.com/poststelle/poststelle/eventstore/packblob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// checkingRecorder records through the intake and counts the receipts that name a
// problem: a delivery the channel could not decrypt or verify is still recorded and
// acknowledged, so without this count a broken run would look like a fast one.
type checkingRecorder struct {
	in       gateway.Recorder
	recorded atomic.Int64
	problems atomic.Int64
	first    atomic.Pointer[string]
}

func (c *checkingRecorder) Record(ctx context.Context, tenant, key string, msg *gateway.MessageReceived) (gateway.Receipt, error) {
	rc, err := c.in.Record(ctx, tenant, key, msg)
	if err != nil {
		return rc, err
	}
	c.recorded.Add(1)
	valid := strings.Contains(msg.Metadata[oscichannel.MetaContentSignatures], ": valid")
	if len(msg.Problems) > 0 || !valid || len(msg.Parts) != 1 {
		c.problems.Add(1)
		s := fmt.Sprintf("problems %q, signatures %q, %d parts", msg.Problems, msg.Metadata[oscichannel.MetaContentSignatures], len(msg.Parts))
		c.first.CompareAndSwap(nil, &s)
	}
	return rc, nil
}

// receive is the child process: bob's gateway as passive recipient, with the
// embedded log and blob store in dir. It prints its address, then answers each
// "stat" line on stdin with its CPU time and peak RSS, and stops at EOF.
func receive(certs, dir string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: logger})
	if err != nil {
		return fmt.Errorf("opening the log: %w", err)
	}
	defer l.Close()
	blobs, err := packblob.Open(ctx, packblob.Config{Dir: filepath.Join(dir, "blobs"), Logger: logger})
	if err != nil {
		return fmt.Errorf("opening the blobs: %w", err)
	}
	pinFile, err := writePin(dir)
	if err != nil {
		return err
	}
	cfg := oscichannel.Config{
		Intermediary: oscichannel.IntermediaryConfig{URL: "http://127.0.0.1:1/",
			CipherCertFile:    filepath.Join(certs, "osci_manager_cipher_4096.cer"),
			SignatureCertFile: filepath.Join(certs, "osci_manager_signature_4096.cer")},
		Cipher:    keyConfig(certs, pinFile, "bob_cipher_4096"),
		Signature: keyConfig(certs, pinFile, "bob_signature_4096"),
		Passive:   &oscichannel.PassiveConfig{Listen: "127.0.0.1:0"},
	}
	rec := &checkingRecorder{in: &gateway.Intake{Log: l}}
	p, err := oscichannel.NewPassive(cfg, gateway.IntakeDeps{Intake: rec, Blobs: blobs, Logger: logger})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	fmt.Printf("listening %s\n", p.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "stat" {
			cpu, hwm := usage()
			fmt.Printf("cpu %d hwm %d recorded %d problems %d\n", cpu.Nanoseconds(), hwm, rec.recorded.Load(), rec.problems.Load())
		}
	}
	if s := rec.first.Load(); s != nil {
		fmt.Fprintln(os.Stderr, "first receipt with problems:", *s)
	}
	cancel()
	return <-done
}

// usage is the process's user+system CPU time and its peak resident set (VmHWM) in KiB.
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return cpu, kb
		}
	}
	return cpu, 0
}
