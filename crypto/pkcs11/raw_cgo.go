//go:build cgo

package pkcs11

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/miekg/pkcs11"
)

// rawRSA decrypts with CKM_RSA_X_509 in a session of its own, for OAEP parameters
// the token refuses; the module is the one crypto11 initialized, logged in already.
type rawRSA struct {
	mu      sync.Mutex
	p       *pkcs11.Ctx
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
	pub     *rsa.PublicKey
}

func openRaw(cfg Config, pin string, id, label []byte, pub *rsa.PublicKey) (*rawRSA, error) {
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, fmt.Errorf("pkcs11: loading %s", cfg.Module)
	}
	if err := p.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, fmt.Errorf("pkcs11: initializing: %w", err)
	}
	slot, err := findSlot(p, cfg)
	if err != nil {
		return nil, err
	}
	s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening a session: %w", err)
	}
	r := &rawRSA{p: p, session: s, pub: pub}
	if err := p.Login(s, pkcs11.CKU_USER, pin); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = r.close()
		return nil, fmt.Errorf("pkcs11: logging in: %w", err)
	}
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	if label != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if err := p.FindObjectsInit(s, tmpl); err != nil {
		_ = r.close()
		return nil, fmt.Errorf("pkcs11: finding the key: %w", err)
	}
	hs, _, err := p.FindObjects(s, 1)
	_ = p.FindObjectsFinal(s)
	if err != nil || len(hs) != 1 {
		_ = r.close()
		return nil, errors.New("pkcs11: finding the key for raw RSA")
	}
	r.key = hs[0]
	return r, nil
}

func (r *rawRSA) decryptOAEP(ciphertext []byte, opts *rsa.OAEPOptions) ([]byte, error) {
	k := r.pub.Size()
	if len(ciphertext) > k {
		return nil, errDecryption
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}
	if err := r.p.DecryptInit(r.session, mech, r.key); err != nil {
		return nil, fmt.Errorf("pkcs11: raw RSA: %w", err)
	}
	m, err := r.p.Decrypt(r.session, ciphertext)
	if err != nil {
		return nil, errDecryption
	}
	// Tokens may strip leading zeros of the result; OAEP needs all k octets.
	em := new(big.Int).SetBytes(m).FillBytes(make([]byte, k))
	return oaepDecode(em, opts)
}

func (r *rawRSA) close() error {
	err := r.p.CloseSession(r.session)
	// Finalize is crypto11's, which shares the module.
	return err
}

func findSlot(p *pkcs11.Ctx, cfg Config) (uint, error) {
	if cfg.Slot != nil {
		return uint(*cfg.Slot), nil
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: listing slots: %w", err)
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && ti.Label == cfg.Token {
			return s, nil
		}
	}
	return 0, fmt.Errorf("pkcs11: no token %q", cfg.Token)
}

// refused tells the token's "not with these parameters" from a failed decryption.
func (r *rawRSA) refused(err error) bool {
	return isCode(err, pkcs11.CKR_ARGUMENTS_BAD) || isCode(err, pkcs11.CKR_MECHANISM_PARAM_INVALID) ||
		isCode(err, pkcs11.CKR_MECHANISM_INVALID)
}

func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}
