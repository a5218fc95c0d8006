package preservation

import (
	"crypto"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; empty: valid
	}{
		{"defaults", Config{}, ""},
		{"all set", Config{Interval: time.Hour, Hash: "sha3-256", RenewHash: "SHA-384", TSA: "https://tsa.example/tsr", MaxBatch: 10}, ""},
		{"interval too short", Config{Interval: time.Millisecond}, "evidence.records.interval"},
		{"SHA-1", Config{Hash: "SHA-1"}, "evidence.records.hash"},
		{"unknown renew hash", Config{RenewHash: "MD5"}, "evidence.records.renew_hash"},
		{"batch of one", Config{MaxBatch: 1}, "evidence.records.max_batch"},
		{"negative batch", Config{MaxBatch: -5}, "evidence.records.max_batch"},
		{"TSA not http", Config{TSA: "ftp://tsa.example/"}, "evidence.records.tsa"},
		{"TSA without host", Config{TSA: "https:///x"}, "evidence.records.tsa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate("evidence.records")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestConfigDefaultsAndOn(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Interval != 24*time.Hour || c.Hash != "SHA-256" || c.RenewHash != "SHA-512" || c.MaxBatch != 100_000 {
		t.Fatalf("defaults: %+v", c)
	}
	on, off := true, false
	tests := []struct {
		cfg  Config
		tsa  bool
		want bool
	}{
		{Config{}, false, false},
		{Config{}, true, true},
		{Config{TSA: "https://tsa.example/"}, false, true},
		{Config{Enabled: &off}, true, false},
		{Config{Enabled: &on}, false, true},
	}
	for _, tt := range tests {
		if got := tt.cfg.On(tt.tsa); got != tt.want {
			t.Errorf("%+v with TSA %v: on %v, want %v", tt.cfg, tt.tsa, got, tt.want)
		}
	}
}

func TestParseHash(t *testing.T) {
	for name, want := range map[string]crypto.Hash{"SHA-256": crypto.SHA256, "sha-512": crypto.SHA512, "SHA3-512": crypto.SHA3_512} {
		if h, err := ParseHash(name); err != nil || h != want {
			t.Errorf("ParseHash(%q) = %v, %v", name, h, err)
		}
	}
	for _, name := range []string{"", "SHA-1", "SHA256", "SHA-224", "MD5"} {
		if _, err := ParseHash(name); err == nil {
			t.Errorf("ParseHash(%q) accepted", name)
		}
	}
}
