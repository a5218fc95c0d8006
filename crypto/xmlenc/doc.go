// Package xmlenc decrypts and encrypts W3C XML Encryption 1.1 data as
// OSCI-Transport 1.2 uses it, on the DOM of crypto/xmldsig.
//
// API summary:
//
//	ed, err := xmlenc.ParseEncryptedData(el, policy)   // el from xmldsig.Parse
//	plain, res, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{
//	        Policy: policy, Recipient: xmlenc.Recipient{Key: decrypter, Certificate: cert}})
//	res, err := xmlenc.DecryptTo(ctx, ed, spool, opts) // CipherReference through opts.Resolver, streamed
//	enc, err := xmlenc.Encrypt(ctx, plain, xmlenc.EncryptOptions{Recipients: certs})
//	enc, err := xmlenc.EncryptStream(ctx, r, w, "cid:part", opts)
//
// Result.Algorithms names what was used (for the Prüfprotokoll) and
// Result.Key the data key, which opens attachments encrypted with the same
// key (DecryptOptions.Key). Errors wrap ErrFormat, ErrUnsupported,
// ErrRefused (a *RefusedError: the Policy said no), ErrNoKey, ErrDecrypt
// (wrong key, tampered, truncated, failed tag, bad padding) or ErrTooLarge.
//
// Algorithms: data aes128/192/256-gcm (12 byte IV, or 16 as the OSCI
// library 1.9 to 2.0 sent, announced by osci128:IvLength), aes128/192/256-cbc
// and tripledes-cbc; key transport rsa-oaep-mgf1p, xmlenc11 rsa-oaep (any
// DigestMethod and MGF of SHA-1/SHA-2) and rsa-1_5, through crypto.Decrypter
// so that PKCS#11 keys work. DefaultPolicy accepts GCM and OAEP, CBC as
// legacy, and refuses 3DES and RSA-1_5. Encryption produces AES-GCM with
// RSA-OAEP, by default as the OSCI library 2.4.1 does: aes256-gcm, 12 byte
// IV announced by osci128:IvLength, xmlenc11#rsa-oaep with SHA-256 and
// MGF1-SHA-256, the certificate in the EncryptedKey's X509Data.
//
// OSCI: the library reads a GCM EncryptionMethod without osci128:IvLength
// as a 16 byte IV (XML Encryption 1.1 says 12); decrypt OSCI messages with
// OSCIPolicy, which does the same. Encryption always writes IvLength
// unless told not to, so both kinds of reader agree.
//
// Bounds: CipherValue sizes, the number of EncryptedKeys (inside the
// KeyInfo, passed in, or reached by ds:RetrievalMethod) and of their
// certificates are capped by the Policy; key chains (an EncryptedKey whose
// KeyInfo holds another EncryptedKey) are not followed, so nesting stops at
// one level; agreement and derived keys and AES key wrap are not supported.
//
// Streaming: GCM over a CipherReference is decrypted with crypto/cipher's
// CTR and our own GHASH, so memory stays bounded; plaintext reaches the
// writer before the tag at the end is checked, so it is valid only when
// DecryptTo returns nil, and the caller discards it otherwise.
package xmlenc
