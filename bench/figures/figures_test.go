package figures

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	r := New("smtp")
	r.Params["senders"] = "16"
	r.Add("serve", "poststelle serve SMTP", 812.5, "msg/s").Latency(12*time.Millisecond, 48500*time.Microsecond)
	path := filepath.Join(t.TempDir(), "sub", "smtp.json")
	if err := Write(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := got.Get("serve")
	if !ok || f.Value != 812.5 || f.P50Ms != 12 || f.P99Ms != 48.5 || got.Params["senders"] != "16" || !got.Started.Equal(r.Started) {
		t.Fatalf("read back %+v, figure %+v", got, f)
	}
	if _, ok := got.Get("raw"); ok {
		t.Fatal("Get found a figure that was never added")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"harness":"x","figures":[],"extra":1}`,
		"trailing":      `{"harness":"x","figures":[]} {}`,
		"no harness":    `{"figures":[]}`,
		"not json":      `harness: x`,
		"too large":     `{"harness":"x","params":{"a":"` + strings.Repeat("a", MaxFileSize) + `"}}`,
	} {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"harness":"sqlite","started":"2026-12-02T06:00:00Z","figures":[{"key":"raw64","label":"raw","value":1.5,"unit":"events/s","p99_ms":2}]}`))
	f.Add([]byte(`{"harness":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(bytes.NewReader(b))
		if err == nil && r.Harness == "" {
			t.Fatal("decoded a run without a harness")
		}
	})
}
