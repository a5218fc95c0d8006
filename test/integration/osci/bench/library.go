package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// libraryRun is one run of the Java peer's decrypt-bench over the same frames.
type libraryRun struct {
	Threads           int     `json:"threads"`
	ValidSignatures   int     `json:"validSignatures"`
	WallSeconds       float64 `json:"wallSeconds"`
	CPUSeconds        float64 `json:"cpuSeconds"`
	CPUPerMessageMs   float64 `json:"cpuPerMessageMs"`
	MessagesPerSecond float64 `json:"messagesPerSecond"`
}

// libraryBench has the OSCI library parse, decrypt and verify the frames the
// gateway received, on 1 and 2 threads, and checks that every signature held.
func libraryBench(java, cp, certs, frames, dir string, n int) ([]libraryRun, error) {
	out := filepath.Join(dir, "library.json")
	cmd := exec.Command(java, "-cp", cp, "org.poststelle.oscipeer.Peer", "decrypt-bench",
		"--certs", certs, "--frames-dir", frames, "--threads", "1,2", "--warmup", fmt.Sprint(min(n, 16)), "--out", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("the library's decrypt-bench: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Runs []libraryRun `json:"runs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("the library's decrypt-bench said: %w", err)
	}
	for _, r := range doc.Runs {
		// A library that did not verify has not done the work it is compared for.
		if r.ValidSignatures != n {
			return nil, fmt.Errorf("the library found %d of %d content signatures valid (%d threads)", r.ValidSignatures, n, r.Threads)
		}
	}
	if len(doc.Runs) == 0 {
		return nil, fmt.Errorf("the library's decrypt-bench reported no runs")
	}
	return doc.Runs, nil
}
