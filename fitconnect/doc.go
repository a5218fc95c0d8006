// Package fitconnect speaks FITKO's FIT-Connect Submission API from the side of a
// destination (Zustellpunkt): it lists and fetches the submissions addressed to
// the destination, decrypts their JWEs (RSA-OAEP-256 + A256GCM, compact
// serialization), validates the metadata against the official JSON schema it
// names, checks every SHA-512 the metadata states, and answers with a signed
// Security Event Token (RFC 8417; typ secevent+jwt, PS512) in the case's event
// log: accept-submission with the authentication tags of the JWEs it read, or
// reject-submission with the problems found. It verifies the platform's
// callbacks (HMAC-SHA512 over timestamp and body), and it writes replies
// (Rückkanal) encrypted to the key the applicant named in the metadata.
//
// The package is protocol only: it records nothing. The portal channel
// (channels/portal) decides when to confirm, after its append is durable.
//
// Sources, in our words, are collected in docs/portal.md ("The FIT-Connect
// protocol"): FITKO's documentation at docs.fitko.de/fit-connect and its
// sources on git.fitko.de, the Python SDK fitconnect 0.4.2, the Java SDK as used
// by public adapters, and RFC 7516, 7517, 7518, 7807, 8417. Where the public
// material was silent the doc comment says so.
package fitconnect
