//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThalesGroup/crypto11"
)

// Open logs in to the token and finds the key pair and its certificate.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Key, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pin, err := readPIN(cfg.PINFile)
	if err != nil {
		return nil, err
	}
	c11, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.Token,
		SlotNumber: cfg.Slot, Pin: pin})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening token %q with %s: %w", cfg.Token, cfg.Module, err)
	}
	k, err := find(c11, cfg)
	if err != nil {
		_ = c11.Close()
		return nil, err
	}
	k.close = c11.Close
	if pub, ok := k.Public().(*rsa.PublicKey); ok {
		id, _ := hex.DecodeString(cfg.ID)
		var label []byte
		if cfg.Label != "" {
			label = []byte(cfg.Label)
		}
		raw, err := openRaw(cfg, pin, id, label, pub)
		if err != nil {
			_ = k.Close()
			return nil, err
		}
		k.raw = raw
	}
	if log != nil {
		log.InfoContext(ctx, "pkcs11 key opened", "module", cfg.Module, "token", cfg.Token,
			"label", cfg.Label, "subject", k.Certificate.Subject.String())
	}
	return k, nil
}

func find(c11 *crypto11.Context, cfg Config) (*Key, error) {
	id, _ := hex.DecodeString(cfg.ID)
	var label []byte
	if cfg.Label != "" {
		label = []byte(cfg.Label)
	}
	s, err := c11.FindKeyPair(id, label)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: finding key %q: %w", cfg.Label, err)
	}
	if s == nil {
		return nil, fmt.Errorf("pkcs11: no key pair labelled %q with id %q on the token", cfg.Label, cfg.ID)
	}
	k := &Key{Signer: s}
	if cfg.CertFile != "" {
		if k.Certificate, err = readCertificate(cfg.CertFile); err != nil {
			return nil, err
		}
	} else if k.Certificate, err = c11.FindCertificate(id, label, nil); err != nil {
		return nil, fmt.Errorf("pkcs11: finding the key's certificate: %w", err)
	}
	if k.Certificate == nil {
		return nil, errors.New("pkcs11: no certificate for the key on the token and no cert_file")
	}
	if !matches(k.Certificate, s.Public()) {
		return nil, errors.New("pkcs11: the certificate is not the key's")
	}
	return k, nil
}
