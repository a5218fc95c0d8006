package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/gateway/offices"
)

// runHashPassword reads a password (the first line of stdin) and prints
// its argon2id hash for a password_hash field of the offices
// configuration; the password never appears on a command line.
func runHashPassword(stdin io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "poststelle: read password:", err)
		return exitUsage
	}
	h, err := offices.HashPasswordArgon2id(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, h)
	return exitOK
}
