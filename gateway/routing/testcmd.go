package routing

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/poststelle/poststelle/gateway"
)

// MaxTestMessageBytes caps the message `route test` reads.
const MaxTestMessageBytes = 64 << 20

// ParseFunc turns a message file into the receipt an inbound adapter would
// record. The gateway does not parse mail itself (adapters do), so the
// command takes the parser: officeapi.ParseEML for .eml files.
type ParseFunc func(raw []byte) (*gateway.MessageReceived, error)

// TestCommand is `poststelle route test --config FILE MESSAGE.eml`: it reads
// the rules and a message, prints each rule's verdict and the decision, and
// returns the exit code: 0 routed to offices, 1 to triage, 2 when a file
// could not be used.
func TestCommand(stdout io.Writer, rulesFile, messageFile string, parse ParseFunc) int {
	raw, _, err := ReadFile(rulesFile)
	if err != nil {
		fmt.Fprintln(stdout, "route test:", err)
		return 2
	}
	set, err := Parse(raw, Options{})
	if err != nil {
		fmt.Fprintln(stdout, "route test:", err)
		return 2
	}
	msg, err := readTestMessage(messageFile, parse)
	if err != nil {
		fmt.Fprintln(stdout, "route test:", err)
		return 2
	}
	steps, d := set.Explain(NewInput(msg, FactsFromMetadata(msg.Metadata)))
	printExplanation(stdout, msg, set, steps, d)
	if d.Routed() {
		return 0
	}
	return 1
}

func printExplanation(w io.Writer, msg *gateway.MessageReceived, set *Set, steps []Step, d Decision) {
	fmt.Fprintf(w, "rules:     %d, version %s\n", set.Len(), set.Version)
	fmt.Fprintf(w, "message:   channel %s, from %s, subject %q\n", msg.Channel, msg.From.Address, msg.Subject)
	in := NewInput(msg, FactsFromMetadata(msg.Metadata))
	fmt.Fprintf(w, "recipients: %s\n", strings.Join(in.Recipients, ", "))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range steps {
		mark := "-"
		if s.Matched {
			mark = "+"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", mark, s.Rule, s.Why)
	}
	tw.Flush()
	if d.Routed() {
		fmt.Fprintf(w, "decision:  routed to %s by %s\n", strings.Join(d.Offices, ", "), strings.Join(d.Rules, ", "))
	} else {
		fmt.Fprintf(w, "decision:  triage (%s)\n", d.Reason)
	}
}

func readTestMessage(path string, parse ParseFunc) (*gateway.MessageReceived, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxTestMessageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > MaxTestMessageBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxTestMessageBytes)
	}
	m, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return m, nil
}
