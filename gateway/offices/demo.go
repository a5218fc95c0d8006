package offices

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DemoOffice is the office of the demo set-up.
const DemoOffice = "demo"

// Credentials are a login.
type Credentials struct {
	User     string
	Password string
}

// DemoCredentialsFile is the file EnsureDemo keeps the demo login in,
// relative to the data directory.
const DemoCredentialsFile = "demo-credentials.txt"

// EnsureDemo returns the demo set-up's configuration: one office "demo"
// whose member "demo" logs in with a random password made on first run and
// kept in <dataDir>/demo-credentials.txt ("user=…" and "password=…" lines,
// mode 0600), so restarts keep the login. created reports that the login
// was made by this call: the caller shows the password then, once, and
// afterwards only points at the file.
func EnsureDemo(dataDir string) (cfg Config, creds Credentials, created bool, err error) {
	path := filepath.Join(dataDir, DemoCredentialsFile)
	creds, err = readCredentials(path)
	if errors.Is(err, fs.ErrNotExist) {
		creds, err = newDemoCredentials(path)
		created = err == nil
	}
	if err != nil {
		return Config{}, Credentials{}, false, err
	}
	hash, err := HashPassword(creds.Password)
	if err != nil {
		return Config{}, Credentials{}, false, err
	}
	cfg = Config{Offices: []Office{{ID: DemoOffice, Name: "Demo office",
		Members: []Member{{User: creds.User, PasswordHash: hash}}}}}
	if err := cfg.Validate(); err != nil {
		return Config{}, Credentials{}, false, fmt.Errorf("offices: demo: %w", err)
	}
	return cfg, creds, created, nil
}

// ReadDemoCredentials reads the demo login EnsureDemo keeps in dataDir, for a
// test or a benchmark that logs in as the demo office's member.
func ReadDemoCredentials(dataDir string) (Credentials, error) {
	return readCredentials(filepath.Join(dataDir, DemoCredentialsFile))
}

func readCredentials(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, err
	}
	defer f.Close()
	var c Credentials
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "user":
			c.User = v
		case "password":
			c.Password = v
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("offices: read %s: %w", path, err)
	}
	if !userPattern.MatchString(c.User) || c.Password == "" || len(c.Password) > MaxPasswordBytes {
		return Credentials{}, fmt.Errorf("offices: %s: want user=… and password=… lines; delete the file to make a new login", path)
	}
	return c, nil
}

func newDemoCredentials(path string) (Credentials, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Credentials{}, fmt.Errorf("offices: make demo password: %w", err)
	}
	c := Credentials{User: "demo", Password: base64.RawURLEncoding.EncodeToString(b[:])}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return Credentials{}, fmt.Errorf("offices: %w", err)
	}
	tmp := path + ".tmp"
	content := fmt.Sprintf("# Poststelle demo office login (office API on 127.0.0.1:8080, office IMAP on 127.0.0.1:1143)\nuser=%s\npassword=%s\n", c.User, c.Password)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("offices: write demo credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Credentials{}, fmt.Errorf("offices: write demo credentials: %w", err)
	}
	return c, nil
}
