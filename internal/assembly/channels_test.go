package assembly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/servetest"
)

// The fake channel of these tests: a collector that records one message
// from its configured sender when it starts, and an outbound that reports
// each answer it is given.
const fakeChannel gateway.Channel = "fake"

type fakeInConfig struct {
	Sender  string `yaml:"sender"`
	Subject string `yaml:"subject"`
}

type fakeOutConfig struct {
	Prefix string `yaml:"prefix"`
}

type fakeInbound struct {
	cfg      fakeInConfig
	deps     gateway.IntakeDeps
	recorded chan gateway.Receipt
}

func (f *fakeInbound) Run(ctx context.Context) error {
	raw := "From: " + f.cfg.Sender + "\r\nSubject: " + f.cfg.Subject + "\r\n\r\nGuten Tag\r\n"
	ref, err := f.deps.Blobs.Put(ctx, strings.NewReader(raw), 1<<20)
	if err != nil {
		return err
	}
	msg := &gateway.MessageReceived{Channel: fakeChannel, From: gateway.Address{Address: f.cfg.Sender}, Subject: f.cfg.Subject,
		ReceivedAt: f.deps.Now().UTC(), Raw: ref}
	rc, err := f.deps.Intake.Record(ctx, f.deps.Tenant, gateway.MessageKey(fakeChannel, ref.SHA256), msg)
	if err != nil {
		return err
	}
	f.recorded <- rc
	<-ctx.Done()
	return nil
}

type sentReply struct {
	prefix string
	reply  gateway.ReplyRequested
}

type fakeOutbound struct {
	prefix string
	sent   chan sentReply
}

func (f *fakeOutbound) Send(ctx context.Context, r *gateway.ReplyRequested, _ *gateway.MessageReceived) (replies.SentInfo, error) {
	f.sent <- sentReply{prefix: f.prefix, reply: *r}
	return replies.SentInfo{ChannelMessageID: f.prefix + "-" + r.ReplyID, Response: "accepted"}, nil
}

// fakeRegistry is a registry with only the fake channel: one registration,
// nothing else in the assembly knows of it.
func fakeRegistry(t *testing.T, recorded chan gateway.Receipt, sent chan sentReply) channels.Registry {
	t.Helper()
	in := channels.NewInbound(channels.SectionSpec[fakeInConfig]{Key: "fake_in",
		Validate: func(c *fakeInConfig) error {
			if c.Sender == "" {
				return fmt.Errorf("sender: required")
			}
			return nil
		}},
		func(c *fakeInConfig, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			deps, err := deps.WithDefaults()
			if err != nil {
				return nil, err
			}
			return &fakeInbound{cfg: *c, deps: deps, recorded: recorded}, nil
		})
	out := channels.NewOutbound(channels.SectionSpec[fakeOutConfig]{Key: "fake_out"},
		func(c *fakeOutConfig, deps channels.OutboundDeps) (replies.Outbound, error) {
			return &fakeOutbound{prefix: c.Prefix, sent: sent}, nil
		})
	reg, err := channels.NewRegistry(channels.Registration{Name: fakeChannel, Inbound: in, Outbound: out,
		Reply: replies.Route{Channel: fakeChannel, Address: replies.SenderAddress}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "poststelle.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFakeChannelConfig: the loader decodes the sections the registry names,
// strictly, validates them with the field's name, and knows no other
// channel's section.
func TestFakeChannelConfig(t *testing.T) {
	reg := fakeRegistry(t, nil, nil)
	cfg, err := LoadConfigWith(writeConfig(t, "fake_in: {sender: postbox-7, subject: Antrag}\nfake_out: {prefix: FK}\n"), reg)
	if err != nil {
		t.Fatal(err)
	}
	if in := ChannelSection[fakeInConfig](cfg, "fake_in"); in == nil || in.Sender != "postbox-7" || in.Subject != "Antrag" {
		t.Fatalf("fake_in decoded as %+v", in)
	}
	if out := ChannelSection[fakeOutConfig](cfg, "fake_out"); out == nil || out.Prefix != "FK" {
		t.Fatalf("fake_out decoded as %+v", out)
	}
	if cfg.DataDir != "data" {
		t.Fatalf("gateway settings lost beside the channel sections: data_dir %q", cfg.DataDir)
	}
	bad := map[string]string{
		"fake_in: {subject: Antrag}\n":                 "fake_in.sender: required",
		"fake_in: {sender: x}\nfake_out: {bogus: 1}\n": "line 2: field bogus not found",
		"smtp: {listen: \"127.0.0.1:25\"}\n":           "field smtp not found",
		"log_level: loud\n":                            "log_level",
	}
	for body, want := range bad {
		if _, err := LoadConfigWith(writeConfig(t, body), reg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one containing %q", body, err, want)
		}
	}
	demo, err := LoadConfigWith("", reg)
	if err != nil {
		t.Fatal(err)
	}
	if ChannelSection[fakeInConfig](demo, "fake_in") != nil {
		t.Error("a section without a demo value is on in the demo set-up")
	}
}

// TestFakeChannelEndToEnd proves "one registration": a channel the assembly
// has never heard of gets its section decoded, its inbound started by Build
// and Run, its messages routed to the office, and an office's answer to one
// of them planned on its route and handed to its outbound by the reply
// sender.
func TestFakeChannelEndToEnd(t *testing.T) {
	recorded, sent := make(chan gateway.Receipt, 1), make(chan sentReply, 1)
	dir := t.TempDir()
	body := fmt.Sprintf("data_dir: %s\noffice_api: {listen: \"127.0.0.1:0\"}\noffice_imap: {listen: \"127.0.0.1:0\"}\n"+
		"smtp_submission: {listen: \"127.0.0.1:0\"}\nfake_in: {sender: postbox-7, subject: Antrag}\nfake_out: {prefix: FK}\n", filepath.Join(dir, "data"))
	cfg, err := LoadConfigWith(writeConfig(t, body), fakeRegistry(t, recorded, sent))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(context.Background(), cfg, Deps{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var rc gateway.Receipt
	select {
	case rc = <-recorded:
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the fake inbound was not started")
	}

	// The office API answers 404 until routing has put the message into the office's queue.
	servetest.Reply(t, g.OfficeAPIAddr().String(), filepath.Join(dir, "data"), rc.Stream, "Ihr Antrag ist eingegangen.")

	select {
	case s := <-sent:
		if s.prefix != "FK" || s.reply.Channel != fakeChannel || s.reply.To.Address != "postbox-7" {
			t.Fatalf("the fake outbound got %+v", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reply sender did not use the fake outbound")
	}
}

// TestOneEGVPTransport: a configuration with both osci: and egvp_enterprise: is
// refused at load; either alone loads.
func TestOneEGVPTransport(t *testing.T) {
	osci := "osci:\n  intermediary: {url: \"http://127.0.0.1:1/\", cipher_cert_file: c, signature_cert_file: s}\n  cipher: {pkcs12_file: k, password_file: p}\n  signature: {pkcs12_file: k, password_file: p}\n  poll_interval: 1m\n"
	ent := "egvp_enterprise:\n  endpoint: http://127.0.0.1:1/EGVP-WS/EGVP-WebService\n  user_id: DE.Justiz.x\n  poll_interval: 1m\n  outbound: true\n"
	for _, tc := range []struct {
		conf string
		ok   bool
	}{{osci, true}, {ent, true}, {osci + ent, false}} {
		path := filepath.Join(t.TempDir(), "poststelle.yaml")
		if err := os.WriteFile(path, []byte("data_dir: "+t.TempDir()+"\n"+tc.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "osci and egvp_enterprise") {
			t.Errorf("%q: %v", tc.conf, err)
		}
	}
}
