package osci

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"

	"github.com/poststelle/poststelle/crypto/xmlenc"
)

type hashSum interface {
	io.Writer
	Sum([]byte) []byte
}

func newSHA256() hashSum { return sha256.New() }

// newDataKey makes the one data key a container and its attachments share.
func newDataKey(opts xmlenc.EncryptOptions) ([]byte, error) {
	n := 32
	switch opts.Algorithm {
	case "", xmlenc.AES256GCM:
	case xmlenc.AES128GCM:
		n = 16
	case xmlenc.AES192GCM:
		n = 24
	default:
		return nil, errors.New("osci: encrypting: only AES-GCM is produced")
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	key := make([]byte, n)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, err
	}
	return key, nil
}
