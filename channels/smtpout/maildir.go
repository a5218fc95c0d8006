package smtpout

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maildir delivers rendered replies into a local Maildir instead of a relay:
// the demo set-up's outbox, and a way to hand answers to another program
// that reads Maildirs. The layout and the delivery order are the classic
// ones: write the whole message under tmp/, flush it to disk, then rename it
// into new/ and flush the directory. A reader sees either no message or the
// complete one, never a partial file, whatever moment the process dies at;
// a crash before the rename leaves only a stray file in tmp/, which Maildir
// readers ignore.
type maildir struct {
	dir string
	// step, when set, is called before each step of a delivery with the
	// step's name; an error stops the delivery there as a crash would.
	// Tests use it to check the order of the steps.
	step func(name string) error
}

// Steps of a Maildir delivery, in order.
const (
	stepCreate  = "create tmp"
	stepWrite   = "write"
	stepSync    = "fsync file"
	stepClose   = "close"
	stepRename  = "rename into new"
	stepSyncDir = "fsync new"
)

// openMaildir creates dir with its tmp/, new/ and cur/ subdirectories when
// missing.
func openMaildir(dir string) (*maildir, error) {
	if dir == "" {
		return nil, errors.New("maildir: path is empty")
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	return &maildir{dir: dir}, nil
}

// fileName is the name of a reply's file in new/ (and, with an info suffix
// ":2,…" added by the reader, in cur/). It is derived from the Message-ID,
// so that a resend after a crash finds the earlier delivery. Maildir names
// must not contain '/' or ':'; hex never does.
func fileName(msgID string) string {
	sum := sha256.Sum256([]byte("poststelle-maildir\x00" + msgID))
	return "poststelle." + hex.EncodeToString(sum[:16])
}

// deliver stores raw as the message msgID and returns its path relative to
// the Maildir. A message already delivered (in new/, or moved to cur/ by a
// reader) is not written twice.
func (m *maildir) deliver(msgID string, raw []byte) (string, error) {
	name := fileName(msgID)
	if rel, ok, err := m.delivered(name); err != nil || ok {
		return rel, err
	}
	if err := m.do(stepCreate); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Join(m.dir, "tmp"), name+".*")
	if err != nil {
		return "", fmt.Errorf("maildir: create in tmp/: %w", err)
	}
	tmp := f.Name()
	if err := m.write(f, raw); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := m.do(stepClose); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("maildir: close %s: %w", tmp, err)
	}
	rel := filepath.Join("new", name)
	if err := m.do(stepRename); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, rel)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("maildir: move into new/: %w", err)
	}
	if err := m.do(stepSyncDir); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Join(m.dir, "new")); err != nil {
		return "", err
	}
	return rel, nil
}

func (m *maildir) write(f *os.File, raw []byte) error {
	if err := m.do(stepWrite); err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		return fmt.Errorf("maildir: write %s: %w", f.Name(), err)
	}
	if err := m.do(stepSync); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("maildir: fsync %s: %w", f.Name(), err)
	}
	return nil
}

// delivered finds an earlier delivery of name in new/ or cur/.
func (m *maildir) delivered(name string) (string, bool, error) {
	rel := filepath.Join("new", name)
	if _, err := os.Stat(filepath.Join(m.dir, rel)); err == nil {
		return rel, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("maildir: %w", err)
	}
	// The name is hex, so it holds no glob metacharacters.
	read, err := filepath.Glob(filepath.Join(m.dir, "cur", name+":*"))
	if err != nil {
		return "", false, fmt.Errorf("maildir: look in cur/: %w", err)
	}
	if len(read) > 0 {
		return filepath.Join("cur", filepath.Base(read[0])), true, nil
	}
	return "", false, nil
}

func (m *maildir) do(name string) error {
	if m.step == nil {
		return nil
	}
	return m.step(name)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("maildir: fsync %s: %w", dir, err)
	}
	return nil
}
