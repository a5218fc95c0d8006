package integrity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// noteHeader starts the signed text of every checkpoint.
const noteHeader = "poststelle/checkpoint/v1\n"

// CheckpointNote returns the exact bytes the gateway signs for a checkpoint:
//
//	poststelle/checkpoint/v1
//	log <log id>
//	partition <n>
//	size <n>
//	root <base64 of the 32-byte tree head>
//	time <RFC 3339 UTC, nanoseconds>
//
// The log id binds the head to one log, so heads cannot be replayed between
// installations.
func CheckpointNote(logID string, c *eventstore.Checkpoint) []byte {
	var b bytes.Buffer
	b.WriteString(noteHeader)
	fmt.Fprintf(&b, "log %s\npartition %d\nsize %d\nroot %s\ntime %s\n",
		logID, c.Partition, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]),
		c.Time.UTC().Format(time.RFC3339Nano))
	return b.Bytes()
}

// KeyID names a public key: the hex of the first 8 bytes of the SHA-256 of its
// DER SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("integrity: key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// Sign fills in the checkpoint's key id and signature. Ed25519 keys sign the
// note itself; other keys sign its SHA-256 digest.
func Sign(s crypto.Signer, logID string, c *eventstore.Checkpoint) error {
	id, err := KeyID(s.Public())
	if err != nil {
		return err
	}
	note := CheckpointNote(logID, c)
	var sig []byte
	if _, ok := s.Public().(ed25519.PublicKey); ok {
		sig, err = s.Sign(rand.Reader, note, crypto.Hash(0))
	} else {
		d := sha256.Sum256(note)
		sig, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return fmt.Errorf("integrity: sign checkpoint of partition %d at size %d: %w", c.Partition, c.Size, err)
	}
	c.KeyID, c.Signature = id, sig
	return nil
}

// ErrBadSignature means a checkpoint's signature does not verify.
var ErrBadSignature = errors.New("integrity: checkpoint signature invalid")

// VerifyCheckpoint checks a checkpoint's signature with the public key.
func VerifyCheckpoint(pub crypto.PublicKey, logID string, c *eventstore.Checkpoint) error {
	note := CheckpointNote(logID, c)
	d := sha256.Sum256(note)
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, note, c.Signature)
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, d[:], c.Signature)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], c.Signature) == nil ||
			rsa.VerifyPSS(k, crypto.SHA256, d[:], c.Signature, nil) == nil
	default:
		return fmt.Errorf("integrity: unsupported public key type %T", pub)
	}
	if !ok {
		return fmt.Errorf("%w (partition %d, size %d)", ErrBadSignature, c.Partition, c.Size)
	}
	return nil
}

// FormatCheckpoint renders a checkpoint as its note followed by a signature
// line, the form exported for auditors and timestamping.
func FormatCheckpoint(logID string, c *eventstore.Checkpoint) []byte {
	b := CheckpointNote(logID, c)
	return append(b, "sig "+c.KeyID+" "+base64.StdEncoding.EncodeToString(c.Signature)+"\n"...)
}

// ParseCheckpoint reads what FormatCheckpoint wrote. It returns the log id.
func ParseCheckpoint(text []byte) (string, eventstore.Checkpoint, error) {
	var c eventstore.Checkpoint
	if len(text) > 4096 || !bytes.HasPrefix(text, []byte(noteHeader)) {
		return "", c, errors.New("integrity: not a checkpoint")
	}
	lines := bytes.Split(bytes.TrimSuffix(text[len(noteHeader):], []byte("\n")), []byte("\n"))
	if len(lines) != 6 {
		return "", c, fmt.Errorf("integrity: checkpoint has %d lines, want 6", len(lines))
	}
	field := func(i int, name string) (string, error) {
		k, v, ok := bytes.Cut(lines[i], []byte(" "))
		if !ok || string(k) != name {
			return "", fmt.Errorf("integrity: checkpoint line %d: want %q", i+2, name)
		}
		return string(v), nil
	}
	var vals [6]string
	for i, name := range []string{"log", "partition", "size", "root", "time", "sig"} {
		v, err := field(i, name)
		if err != nil {
			return "", c, err
		}
		vals[i] = v
	}
	p, err1 := strconv.ParseInt(vals[1], 10, 32)
	size, err2 := strconv.ParseInt(vals[2], 10, 64)
	root, err3 := base64.StdEncoding.DecodeString(vals[3])
	t, err4 := time.Parse(time.RFC3339Nano, vals[4])
	kid, sigText, _ := bytes.Cut([]byte(vals[5]), []byte(" "))
	sig, err5 := base64.StdEncoding.DecodeString(string(sigText))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(root) != 32 || size < 0 {
		return "", c, fmt.Errorf("integrity: malformed checkpoint: %v", err)
	}
	c = eventstore.Checkpoint{Partition: int32(p), Size: size, Time: t, KeyID: string(kid), Signature: sig}
	copy(c.Root[:], root)
	return vals[0], c, nil
}
