package offices

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/gateway/retention"
)

// FuzzParseConfig feeds arbitrary configuration files: no panics, and what
// validates also builds a directory that refuses a wrong password.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("offices: [{id: a, members: [{user: u, password_hash: \"$2a$10$Ng0Vm640JBWEmeiNiYFna.yZ7GC6xIDzijaT3Paq2CnXSwxTv4KoO\"}]}]"))
	f.Add([]byte("admins: [{user: u, password_hash: \"$argon2id$v=19$m=8192,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5\"}]"))
	f.Add([]byte("offices: [{id: a, webhooks: [{url: \"https://x/h\", secret_file: s}]}]\nmailroom: [{user: m, token_hash: \"sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}]"))
	f.Add([]byte("offices: [{id: a, retention: {period: 10y, from: end-of-year}}, {id: b, retention: {period: 1y6m3d, from: receipt}}]"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			return
		}
		// A configuration that validates makes a retention policy.
		if _, err := retention.NewPolicy(retention.Config{}, c.RetentionRules()); err != nil {
			t.Fatalf("valid configuration, invalid retention: %v", err)
		}
		d, err := NewDirectory(c)
		if err != nil {
			return
		}
		for _, o := range c.Offices {
			for _, m := range o.Members {
				if m.PasswordHash != "" && len(m.PasswordHash) < 100 && m.PasswordHash[1] == '2' {
					continue // bcrypt costs up to seconds per check; argon2 is bounded by validation
				}
				if _, err := d.Authenticate(context.Background(), m.User, "definitely-wrong"); err == nil {
					t.Fatalf("wrong password accepted for %q", m.User)
				}
			}
		}
	})
}
