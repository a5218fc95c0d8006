package pkcs11

import (
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"hash"
)

// errDecryption is the only error OAEP decoding gives, whatever failed, so that
// callers cannot tell the failures apart (Manger's attack).
var errDecryption = errors.New("pkcs11: decryption error")

// oaepDecode is EME-OAEP decoding (RFC 8017, 7.1.2 step 3) of em, the raw RSA result
// of a token that decrypts RSA but refuses OAEP with the hash asked for (SoftHSM2 2.6
// knows only SHA-1). It runs in time independent of where the padding fails.
func oaepDecode(em []byte, opts *rsa.OAEPOptions) ([]byte, error) {
	mgfHash := opts.MGFHash
	if mgfHash == 0 {
		mgfHash = opts.Hash
	}
	if !opts.Hash.Available() || !mgfHash.Available() {
		return nil, errors.New("pkcs11: OAEP hash not available")
	}
	h := opts.Hash.New()
	h.Write(opts.Label)
	lHash := h.Sum(nil)
	hLen := len(lHash)
	k := len(em)
	if k < 2*hLen+2 {
		return nil, errDecryption
	}
	seed := append([]byte(nil), em[1:1+hLen]...)
	db := append([]byte(nil), em[1+hLen:]...)
	mgf1XOR(seed, mgfHash.New(), db)
	mgf1XOR(db, mgfHash.New(), seed)

	good := subtle.ConstantTimeByteEq(em[0], 0)
	good &= subtle.ConstantTimeCompare(db[:hLen], lHash)
	// Find the 0x01 after the zero padding without branching on secret bytes.
	rest := db[hLen:]
	lookingForIndex, index, invalid := 1, 0, 0
	for i, b := range rest {
		isZero := subtle.ConstantTimeByteEq(b, 0)
		isOne := subtle.ConstantTimeByteEq(b, 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&isOne, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(isOne, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^isZero, 1, invalid)
	}
	if good&^invalid&^lookingForIndex != 1 {
		return nil, errDecryption
	}
	return rest[index+1:], nil
}

// mgf1XOR xors out with MGF1(seed) (RFC 8017, B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		block := h.Sum(nil)
		for i := 0; i < len(block) && done < len(out); i++ {
			out[done] ^= block[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}
