package integrity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/poststelle/poststelle/eventstore"
)

// A Head is a signed tree head kept outside the gateway: the size and root of
// one partition's Merkle tree at some moment, as a C2SP signed note in the
// tlog-checkpoint form. Heads are what an auditor saves and later checks the
// log against (CheckHeads); a log that lost its newest events together with
// their checkpoints still contradicts a saved head.
type Head struct {
	LogID     string
	Partition int32
	Size      int64
	Root      [32]byte
}

// originPrefix starts the origin line of every head.
const originPrefix = "poststelle/"

// Origin is the head's origin line, which is also the name of the key that
// signs it: poststelle/<log id>/p<partition>.
func (h *Head) Origin() string {
	return originPrefix + h.LogID + "/p" + strconv.Itoa(int(h.Partition))
}

// text is the note body: origin, size, base64 root, each on its own line.
func (h *Head) text() string {
	return h.Origin() + "\n" + strconv.FormatInt(h.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(h.Root[:]) + "\n"
}

// MaxHeadFile caps a head file: a note is about 200 bytes, so this holds
// thousands of partitions.
const MaxHeadFile = 1 << 20

// noteSigner adapts the gateway's crypto.Signer to note.Signer.
type noteSigner struct {
	name string
	hash uint32
	s    crypto.Signer
}

func (n *noteSigner) Name() string    { return n.name }
func (n *noteSigner) KeyHash() uint32 { return n.hash }
func (n *noteSigner) Sign(msg []byte) ([]byte, error) {
	return n.s.Sign(rand.Reader, msg, crypto.Hash(0))
}

// noteVerifier is the note verifier of the gateway key under a key name.
// Signed notes define Ed25519 keys only, so other key types are refused.
func noteVerifier(pub crypto.PublicKey, name string) (note.Verifier, error) {
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("integrity: signed tree heads need an Ed25519 gateway key, not %T", pub)
	}
	vkey, err := note.NewEd25519VerifierKey(name, ed)
	if err != nil {
		return nil, fmt.Errorf("integrity: head key %q: %w", name, err)
	}
	return note.NewVerifier(vkey)
}

// SignHeads returns the signed notes of heads, concatenated in the given
// order: one note per partition, each signed by s under the key name of its
// origin.
func SignHeads(s crypto.Signer, heads []Head) ([]byte, error) {
	var out bytes.Buffer
	for i := range heads {
		h := &heads[i]
		if h.Size < 0 || strings.ContainsAny(h.LogID, " \n+") || h.LogID == "" {
			return nil, fmt.Errorf("integrity: head of partition %d: unusable log id %q or size %d", h.Partition, h.LogID, h.Size)
		}
		v, err := noteVerifier(s.Public(), h.Origin())
		if err != nil {
			return nil, err
		}
		msg, err := note.Sign(&note.Note{Text: h.text()}, &noteSigner{name: v.Name(), hash: v.KeyHash(), s: s})
		if err != nil {
			return nil, fmt.Errorf("integrity: sign head %s at size %d: %w", h.Origin(), h.Size, err)
		}
		out.Write(msg)
	}
	return out.Bytes(), nil
}

// newestCheckpoint is implemented by logs that can return a partition's
// newest checkpoint without reading all of them (the embedded log signs one
// per commit).
type newestCheckpoint interface {
	NewestCheckpoint(ctx context.Context, partition int32) (eventstore.Checkpoint, bool, error)
}

// CurrentHeads returns one head per partition of l: the partition's newest
// signed checkpoint, whose signature is checked with pub first, so that only
// a head the gateway itself signed as a checkpoint is ever re-signed as a
// head. A partition without a checkpoint yields the empty tree.
func CurrentHeads(ctx context.Context, l AuditedLog, pub crypto.PublicKey) ([]Head, error) {
	parts, err := l.Partitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrity: count partitions: %w", err)
	}
	heads := make([]Head, 0, parts)
	for p := range parts {
		c, ok, err := newest(ctx, l, p)
		if err != nil {
			return nil, err
		}
		h := Head{LogID: l.LogID(), Partition: p, Root: emptyRoot}
		if ok {
			if err := VerifyCheckpoint(pub, l.LogID(), &c); err != nil {
				return nil, fmt.Errorf("integrity: newest checkpoint of partition %d: %w", p, err)
			}
			h.Size, h.Root = c.Size, c.Root
		}
		heads = append(heads, h)
	}
	return heads, nil
}

func newest(ctx context.Context, l AuditedLog, p int32) (eventstore.Checkpoint, bool, error) {
	if n, ok := l.(newestCheckpoint); ok {
		c, found, err := n.NewestCheckpoint(ctx, p)
		if err != nil {
			return c, false, fmt.Errorf("integrity: newest checkpoint of partition %d: %w", p, err)
		}
		return c, found, nil
	}
	cps, err := l.Checkpoints(ctx, p)
	if err != nil {
		return eventstore.Checkpoint{}, false, fmt.Errorf("integrity: checkpoints of partition %d: %w", p, err)
	}
	if len(cps) == 0 {
		return eventstore.Checkpoint{}, false, nil
	}
	return cps[len(cps)-1], true, nil
}

// ErrHeadKey means a head is not signed by the key it is checked with.
var ErrHeadKey = errors.New("integrity: head not signed by the gateway key in use")

// ParseHeads reads a head file (the notes SignHeads wrote) and checks each
// note's signature with pub. Signatures by other keys (a witness's
// cosignature) are ignored as long as the gateway's is present and valid.
func ParseHeads(text []byte, pub crypto.PublicKey) ([]Head, error) {
	if len(text) > MaxHeadFile {
		return nil, fmt.Errorf("integrity: head file of %d bytes exceeds %d", len(text), MaxHeadFile)
	}
	notes, err := splitNotes(text)
	if err != nil {
		return nil, err
	}
	heads := make([]Head, 0, len(notes))
	for i, msg := range notes {
		h, err := parseHead(msg, pub)
		if err != nil {
			return nil, fmt.Errorf("note %d: %w", i+1, err)
		}
		heads = append(heads, h)
	}
	return heads, nil
}

// sigLinePrefix starts every signature line of a signed note.
const sigLinePrefix = "— "

// splitNotes cuts concatenated signed notes apart: a note is text lines, a
// blank line, and one or more signature lines; the next line that is not a
// signature line starts the next note. Blank lines between notes are skipped.
func splitNotes(text []byte) ([][]byte, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, errors.New("integrity: head file is empty or does not end with a newline")
	}
	var notes [][]byte
	start, inSigs, sigs := -1, false, 0
	for off := 0; off < len(text); {
		end := off + bytes.IndexByte(text[off:], '\n') + 1
		line := text[off : end-1]
		switch {
		case inSigs && bytes.HasPrefix(line, []byte(sigLinePrefix)):
			sigs++
		case inSigs:
			notes = append(notes, text[start:off])
			start, inSigs, sigs = -1, false, 0
			continue // the line starts the next note; look at it again
		case len(line) == 0 && start < 0:
			// blank line between notes
		case len(line) == 0:
			inSigs = true
		case start < 0:
			start = off
		}
		off = end
		if len(notes) > 1<<16 {
			return nil, errors.New("integrity: head file holds too many notes")
		}
	}
	switch {
	case inSigs && sigs > 0:
		notes = append(notes, text[start:])
	case start >= 0:
		return nil, errors.New("integrity: head file ends inside a note without a signature")
	}
	if len(notes) == 0 {
		return nil, errors.New("integrity: head file holds no signed note")
	}
	return notes, nil
}

// parseHead verifies one note and reads its tlog-checkpoint body.
func parseHead(msg []byte, pub crypto.PublicKey) (Head, error) {
	var h Head
	origin, _, _ := bytes.Cut(msg, []byte("\n"))
	if err := h.parseOrigin(string(origin)); err != nil {
		return h, err
	}
	v, err := noteVerifier(pub, string(origin))
	if err != nil {
		return h, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return h, fmt.Errorf("%w: head %s carries no signature of key %08x", ErrHeadKey, origin, v.KeyHash())
	case errors.As(err, &invalid):
		return h, fmt.Errorf("%w: the signature on head %s is invalid (the head was altered)", ErrHeadKey, origin)
	case err != nil:
		return h, fmt.Errorf("integrity: head %s: %w", origin, err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return h, fmt.Errorf("integrity: head %s has %d lines, want origin, size and root", origin, len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return h, fmt.Errorf("integrity: head %s: malformed tree size %q", origin, lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return h, fmt.Errorf("integrity: head %s: malformed root hash", origin)
	}
	h.Size = size
	copy(h.Root[:], root)
	return h, nil
}

// parseOrigin reads poststelle/<log id>/p<n>.
func (h *Head) parseOrigin(origin string) error {
	rest, ok := strings.CutPrefix(origin, originPrefix)
	i := strings.LastIndex(rest, "/p")
	if !ok || i <= 0 {
		return fmt.Errorf("integrity: %.80q is not the origin of a Poststelle head", origin)
	}
	p, err := strconv.ParseInt(rest[i+2:], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != rest[i+2:] {
		return fmt.Errorf("integrity: origin %.80q names no partition", origin)
	}
	h.LogID, h.Partition = rest[:i], int32(p)
	return nil
}
