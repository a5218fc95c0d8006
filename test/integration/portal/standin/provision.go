package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// ServiceIdentifier is the service the provisioned destinations accept: a
// LeiKa URN (the form of FITKO's examples).
const ServiceIdentifier = "urn:de:fim:leika:leistung:99123456760610"

// DataSchema is the data schema the provisioned destinations accept.
const DataSchema = "https://schema.fitko.de/fim/s00000000009_1.0.0.schema.json"

// Setup is what a test needs to talk to a provisioned stand-in: URLs,
// client credentials and keys, private ones included (the destination's
// software needs its decryption and signing keys, the sender its signing
// key). cmd/fitconnect-standin writes it as standin.json.
type Setup struct {
	SubmissionAPI string   `json:"submissionApi"` // base URL incl. /v1
	TokenURL      string   `json:"tokenUrl"`
	JWKSURL       string   `json:"jwksUrl"`
	Control       *Control `json:"control,omitempty"`
	PlatformKey   JWK      `json:"platformKey"`
	Sender        Party    `json:"sender"`
	// Destinations: the first is the one under test, the second another
	// authority's (for the authorisation checks).
	Destinations []DestinationSetup `json:"destinations"`
}

// Control is where the fault hooks are served (see ControlHandler).
type Control struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// Party is an API client's credentials.
type Party struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	// SigningKey is a sender's private key for its reply events.
	SigningKey *JWK `json:"signingKey,omitempty"`
}

// DestinationSetup is a provisioned destination with its subscriber.
type DestinationSetup struct {
	DestinationID     string `json:"destinationId"`
	Party             Party  `json:"subscriber"`
	ServiceIdentifier string `json:"serviceIdentifier"`
	EncryptionKid     string `json:"encryptionKid"`
	EncryptionKey     JWK    `json:"encryptionKey"` // public, RSA-OAEP-256
	DecryptionKey     JWK    `json:"decryptionKey"` // private
	SignatureKid      string `json:"signatureKid"`
	VerificationKey   JWK    `json:"verificationKey"` // public, PS512
	SigningKey        JWK    `json:"signingKey"`      // private
}

// Keys are the generated keys of a world, kept in a file so that a second
// run need not generate seven 4096-bit RSA keys again.
type Keys struct {
	Platform     JWK `json:"platform"`
	Sender       JWK `json:"sender"`
	Destinations [2]struct {
		Encryption JWK `json:"encryption"`
		Signature  JWK `json:"signature"`
	} `json:"destinations"`
}

// GenerateKeys makes the keys of a world, in parallel.
func GenerateKeys() (*Keys, error) {
	var k Keys
	type job struct {
		dst           *JWK
		kid, alg, ops string
	}
	jobs := []job{
		{&k.Platform, "platform-" + NewUUID()[:8], "PS512", "sign"},
		{&k.Sender, "sender-" + NewUUID()[:8], "PS512", "sign"},
	}
	for i := range k.Destinations {
		jobs = append(jobs,
			job{&k.Destinations[i].Encryption, NewUUID(), "RSA-OAEP-256", "unwrapKey"},
			job{&k.Destinations[i].Signature, NewUUID(), "PS512", "sign"})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			kp, err := NewKeyPair(j.kid, j.alg, nil, []string{j.ops})
			if err != nil {
				errs[i] = err
				return
			}
			*j.dst = kp.Private
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &k, nil
}

// LoadOrGenerateKeys reads the keys from path, or generates them and writes
// them there (0600).
func LoadOrGenerateKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		var k Keys
		if err := json.Unmarshal(data, &k); err != nil {
			return nil, fmt.Errorf("reading the keys %s: %w", path, err)
		}
		return &k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the keys: %w", err)
	}
	k, err := GenerateKeys()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("writing the keys: %w", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, fmt.Errorf("writing the keys: %w", err)
	}
	return k, nil
}

func publicOf(j JWK, ops ...string) JWK {
	return JWK{Kty: j.Kty, Kid: j.Kid, Alg: j.Alg, KeyOps: ops, N: j.N, E: j.E}
}

// Provision makes a stand-in world from keys: a sender, two destinations
// with their subscribers, each accepting ServiceIdentifier. The URLs of the
// returned Setup are relative to base (http://host:port, no slash at the
// end); opt configures the server.
func Provision(keys *Keys, base string, opt Options) (*Server, *Setup, error) {
	platform, err := keys.Platform.RSAPrivate()
	if err != nil {
		return nil, nil, fmt.Errorf("platform key: %w", err)
	}
	srv := New(platform, keys.Platform.Kid, opt)
	senderKey := publicOf(keys.Sender, "verify")
	setup := &Setup{
		SubmissionAPI: base + "/v1", TokenURL: base + "/token", JWKSURL: base + "/.well-known/jwks.json",
		PlatformKey: srv.PlatformJWK(),
		Sender:      Party{ClientID: NewUUID(), ClientSecret: randomHex(24), SigningKey: &keys.Sender},
	}
	srv.AddClient(Client{ID: setup.Sender.ClientID, Secret: setup.Sender.ClientSecret, Role: Sender, SigningKey: &senderKey})
	for _, dk := range keys.Destinations {
		enc := publicOf(dk.Encryption, "wrapKey")
		sig := publicOf(dk.Signature, "verify")
		ds := DestinationSetup{
			DestinationID: NewUUID(), Party: Party{ClientID: NewUUID(), ClientSecret: randomHex(24)},
			ServiceIdentifier: ServiceIdentifier,
			EncryptionKid:     enc.Kid, EncryptionKey: enc, DecryptionKey: dk.Encryption,
			SignatureKid: sig.Kid, VerificationKey: sig, SigningKey: dk.Signature,
		}
		srv.AddClient(Client{ID: ds.Party.ClientID, Secret: ds.Party.ClientSecret, Role: Subscriber, Destinations: []string{ds.DestinationID}})
		srv.AddDestination(Destination{
			ID: ds.DestinationID, Owner: ds.Party.ClientID, Status: "active", EncryptionKid: enc.Kid,
			Keys: map[string]JWK{enc.Kid: enc, sig.Kid: sig},
			Services: []Service{{Identifier: ServiceIdentifier,
				SubmissionSchemas: []SubmissionSchema{{SchemaURI: DataSchema, MimeType: "application/json"}}, Regions: []string{"DE"}}},
			MetadataVersions: []string{"1.0.0"},
			ReplyChannels:    map[string]any{"fitConnect": map[string]any{}, "eMail": map[string]any{"usePgp": false}},
		})
		setup.Destinations = append(setup.Destinations, ds)
	}
	return srv, setup, nil
}
