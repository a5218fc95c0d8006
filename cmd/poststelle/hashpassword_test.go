package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway/offices"
)

func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runHashPassword(strings.NewReader("geheim 123\n"), &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("not an argon2id PHC string: %q", hash)
	}
	dir, err := offices.NewDirectory(offices.Config{Mailroom: []offices.Member{{User: "post", PasswordHash: hash}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.Authenticate(context.Background(), "post", "geheim 123"); err != nil {
		t.Fatalf("the hash does not accept its password: %v", err)
	}
	if _, err := dir.Authenticate(context.Background(), "post", "geheim 124"); err == nil {
		t.Fatal("the hash accepts another password")
	}
	if code := runHashPassword(strings.NewReader("\n"), &out, &errb); code != exitUsage {
		t.Fatalf("an empty password: exit %d", code)
	}
}
