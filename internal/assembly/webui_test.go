package assembly

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The web_ui.oidc section is read strictly and checked with the rest of
// the configuration.
func TestConfigWebUIOIDC(t *testing.T) {
	const section = `web_ui:
  oidc:
    issuer: https://idp.stadt.example/realms/verwaltung
    client_id: poststelle
    client_secret_file: /etc/poststelle/oidc-secret
    redirect_url: https://post.stadt.example/login/oidc/callback
    scopes: [profile]
    user_claim: email
    name: Landes-IdP
`
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"complete", section, ""},
		{"no client id", strings.Replace(section, "    client_id: poststelle\n", "", 1), "web_ui.oidc.client_id"},
		{"unknown key", section + "    client_secret: inline-secret\n", "client_secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "poststelle.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(f)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("LoadConfig: %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			o := cfg.WebUI.OIDC
			if o == nil || o.ClientID != "poststelle" || o.UserClaim != "email" || !slices.Equal(o.Scopes, []string{"profile"}) ||
				o.ClientSecretFile != "/etc/poststelle/oidc-secret" {
				t.Fatalf("web_ui.oidc decoded as %+v", o)
			}
		})
	}
}
