package assembly

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/internal/dialconf"
	"github.com/poststelle/poststelle/office/officeapi"
	"github.com/poststelle/poststelle/office/officeimap"
	"github.com/poststelle/poststelle/office/submission"
	"github.com/poststelle/poststelle/office/webui"
)

// Config is the gateway's YAML configuration. Every field has a default, so
// an empty file (or none) runs the embedded demo set-up.
type Config struct {
	// DataDir holds the embedded log, the blobs, the state database and the
	// keys (default ./data).
	DataDir string `yaml:"data_dir"`
	// Tenant is the authority this installation serves (default "default").
	Tenant string `yaml:"tenant"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	Keys     struct {
		// SigningKey is the PKCS#8 PEM private key that signs checkpoints
		// (default <data_dir>/keys/gateway.key; created on first start).
		SigningKey string `yaml:"signing_key"`
		// PublicKey is written beside it for auditors.
		PublicKey string `yaml:"public_key"`
		// Fingerprint pins the expected key ("sha256:" + hex SHA-256 of
		// its SubjectPublicKeyInfo, as keys init prints it): log verify
		// fails with any other key, and serve refuses to sign with one.
		Fingerprint string `yaml:"fingerprint"`
	} `yaml:"keys"`
	EventStore EventStoreConfig `yaml:"eventstore"`
	// Blobs selects where raw messages and their parts are kept.
	Blobs BlobsConfig `yaml:"blobs"`
	// Verification configures signature verification and receipt timestamps.
	Verification verification.Config `yaml:"verification"`
	// Offices is the offices configuration file (gateway/offices: offices,
	// members, webhooks, mailroom, admins, auditors). Empty runs the demo
	// office "demo" with its login in <data_dir>/demo-credentials.txt.
	Offices string `yaml:"offices"`
	// Routing selects the rule set.
	Routing RoutingConfig `yaml:"routing"`
	// OfficeAPI is the offices' HTTP API (default 127.0.0.1:8080).
	OfficeAPI officeapi.Config `yaml:"office_api"`
	// WebUI is the mailroom's web UI (office/webui); nil runs none, except
	// in the demo set-up (no configuration file), which serves it on
	// 127.0.0.1:8090.
	WebUI *webui.Config `yaml:"web_ui"`
	// OfficeIMAP is the offices' IMAP server (default 127.0.0.1:1143,
	// STARTTLS with a self-signed certificate made on first run).
	OfficeIMAP officeimap.Config `yaml:"office_imap"`
	// Submission is the offices' SMTP submission endpoint for answers from
	// a mail client (default 127.0.0.1:1587; TLS required off loopback).
	Submission submission.Config `yaml:"smtp_submission"`
	// Replies tunes how answers are retried.
	Replies replies.Config `yaml:"replies"`
	// Ops is the operations listener: /metrics, /healthz, /readyz.
	Ops OpsConfig `yaml:"ops"`
	// Witnesses receive the log's signed head on a schedule; nil: none.
	Witnesses *witness.Config `yaml:"witnesses"`
	// TSAServer runs the gateway's own RFC 3161 TSA (tsaseal.go); nil runs
	// none, except in the demo set-up, which runs one on 127.0.0.1:3180.
	// When verification.tsas is empty, receipts are stamped by it.
	TSAServer *TSAServerConfig `yaml:"tsa_server"`
	// Evidence configures evidence bundles (the seal) and evidence records.
	Evidence EvidenceConfig `yaml:"evidence"`
	// Retention runs the erasure of contents at the end of their offices'
	// retention periods (offices[].retention in the offices file; see
	// docs/retention.md). Off, nothing is erased by time.
	Retention retention.Config `yaml:"retention"`

	// demo is set when no configuration file was given.
	demo bool

	// The channels' own sections (smtp:, imap:, smtp_out:, …) are not
	// fields here: the channel registry names them, and the loader decodes
	// each into the type its registration gives (see ChannelSection).
	registry channels.Registry
	// sections holds each present channel section by its key.
	sections map[string]any
}

// ChannelSection returns the decoded channel section key (a value of type
// C, as its registration gives it), nil when the configuration has no such
// section. Changing the value changes what Build builds.
func ChannelSection[C any](c *Config, key string) *C {
	v, _ := c.sections[key].(*C)
	return v
}

// Channels is the channel registry the configuration was loaded with.
func (c *Config) Channels() channels.Registry { return c.registry }

// RoutingConfig selects the routing rules.
type RoutingConfig struct {
	// Rules is the YAML rule file (gateway/routing); reloaded when it
	// changes and on SIGHUP. Empty: the demo catch-all, or everything to
	// triage when offices are configured.
	Rules string `yaml:"rules"`
	// AfterVerification routes on SignaturesVerified instead of
	// MessageReceived, so that written-form rules see the verification.
	AfterVerification bool `yaml:"after_verification"`
}

// EventStoreConfig selects the log backend.
type EventStoreConfig struct {
	// Backend is "sqlite" (default) or "kafka".
	Backend string      `yaml:"backend"`
	Kafka   KafkaConfig `yaml:"kafka"`
}

// OpsConfig configures the operations listener. It is apart from the office
// API because the metrics name offices and traffic, which is for operators,
// not for the offices; the office API has /healthz and /readyz as well, for a
// load balancer in front of it.
type OpsConfig struct {
	// Listen is host:port; empty (the default) runs no ops listener.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the ops listener,
	// for measuring where a node's CPU goes. Off by default, and refused
	// unless Listen is a loopback address: a profile shows what the process
	// does in detail and a CPU profile costs CPU while it runs.
	Pprof bool `yaml:"pprof"`
}

func (o OpsConfig) validate() error {
	if o.Listen == "" {
		if o.Pprof {
			return errors.New("ops.pprof: needs ops.listen")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("ops.listen: %q is not host:port", o.Listen)
	}
	if o.Pprof && !dialconf.IsLoopback(host) {
		return fmt.Errorf("ops.pprof: only on a loopback ops.listen, not %q", o.Listen)
	}
	return nil
}

// BlobsConfig selects the blob store backend.
type BlobsConfig struct {
	// Backend is "local" (default: <data_dir>/blobs) or "s3", which a
	// cluster needs so that every node serves every message's bytes.
	Backend string   `yaml:"backend"`
	S3      S3Config `yaml:"s3"`
	// MaxPackedBytes (local only): blobs up to this size are appended to
	// pack files with one fsync for the puts that arrive together; larger
	// ones are files of their own. 0 is the default (256 KiB); -1 makes
	// every new blob a file, as before packs existed (packs already
	// written stay readable).
	MaxPackedBytes int64 `yaml:"max_packed_bytes"`
	// Encryption is "on" (default) or "off". On, every new blob is
	// encrypted under a key of its own (eventstore/cryptblob), which is
	// what lets retention erase contents by destroying the key; blobs
	// written while it was off stay readable and cannot be erased.
	Encryption string `yaml:"encryption"`
	// KEKFile holds the key-encryption key, 64 hex digits, mode 0600
	// (default <data_dir>/keys/blob-kek; created on the first start of a
	// local store). Every node of a cluster needs the same file; the S3
	// store never creates one.
	KEKFile string `yaml:"kek_file"`
	// KeysAllowVersioning lets the S3 key store open a versioned bucket;
	// see blobkeys.S3Config.AllowVersioning before setting it.
	KeysAllowVersioning bool `yaml:"keys_allow_versioning"`
}

// encrypted reports whether new blobs are encrypted at rest.
func (b *BlobsConfig) encrypted() bool { return b.Encryption != "off" }

// S3Config is the YAML form of s3blob.Config. The keys are files, never
// values in the configuration.
type S3Config struct {
	Endpoint      string `yaml:"endpoint"`
	Bucket        string `yaml:"bucket"`
	Prefix        string `yaml:"prefix"`
	Region        string `yaml:"region"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
	TLS           bool   `yaml:"tls"`
	CAFile        string `yaml:"ca_file"`
	PartSize      int64  `yaml:"part_size"`
	MaxRetries    int    `yaml:"max_retries"`
}

// KafkaConfig is the YAML form of kafkalog.Config.
type KafkaConfig struct {
	Brokers            []string      `yaml:"brokers"`
	Topic              string        `yaml:"topic"`
	Partitions         int32         `yaml:"partitions"`
	ReplicationFactor  int           `yaml:"replication_factor"`
	Group              string        `yaml:"group"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// maxConfigSize caps the configuration file.
const maxConfigSize = 1 << 20

// LoadConfig reads path ("" means none: all defaults) with the built-in
// channels and validates it.
func LoadConfig(path string) (*Config, error) { return LoadConfigWith(path, channels.Builtin()) }

// LoadConfigWith reads path ("" means none: the demo set-up) and validates
// it; reg names the channel sections the file may hold.
func LoadConfigWith(path string, reg channels.Registry) (*Config, error) {
	c := &Config{registry: reg, sections: map[string]any{}}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if len(raw) > maxConfigSize {
			return nil, fmt.Errorf("config: %s is larger than 1 MiB", path)
		}
		if err := c.decode(raw); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	c.demo = path == ""
	c.setDefaults()
	if path == "" {
		c.WebUI = &webui.Config{}
		for _, s := range reg.Sections() {
			if v := s.Demo(c.DataDir); v != nil {
				c.sections[s.Key] = v
			}
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// decode decodes raw strictly (unknown keys are errors, with their line)
// into c and its channel sections. It decodes once, into a struct made for
// the registry: c's own fields inline, then one pointer field per channel
// section, so that a missing section stays nil.
func (c *Config) decode(raw []byte) error {
	sections := c.registry.Sections()
	core := reflect.TypeFor[Config]()
	fields := []reflect.StructField{{Name: "Core", Type: core, Tag: `yaml:",inline"`}}
	own := coreKeys(core)
	for i, s := range sections {
		if own[s.Key] {
			return fmt.Errorf("channel section %s clashes with a gateway setting of that name", s.Key)
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("Section%d", i), Type: s.Type(),
			Tag: reflect.StructTag(fmt.Sprintf("yaml:%q", s.Key))})
	}
	doc := reflect.New(reflect.StructOf(fields))
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// An empty file is a valid configuration: all defaults.
	if err := dec.Decode(doc.Interface()); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	registry, present := c.registry, c.sections
	*c = doc.Elem().Field(0).Interface().(Config)
	c.registry, c.sections = registry, present
	for i, s := range sections {
		if v := doc.Elem().Field(i + 1); !v.IsNil() {
			c.sections[s.Key] = v.Interface()
		}
	}
	return nil
}

// coreKeys are the top-level YAML keys of Config's own fields.
func coreKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		keys[name] = true
	}
	return keys
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Tenant == "" {
		c.Tenant = "default"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Keys.SigningKey == "" {
		c.Keys.SigningKey = filepath.Join(c.DataDir, "keys", "gateway.key")
	}
	if c.Keys.PublicKey == "" {
		c.Keys.PublicKey = strings.TrimSuffix(c.Keys.SigningKey, ".key") + ".pub"
	}
	if c.EventStore.Backend == "" {
		c.EventStore.Backend = "sqlite"
	}
	if c.Blobs.Backend == "" {
		c.Blobs.Backend = "local"
	}
	if c.Blobs.KEKFile == "" {
		c.Blobs.KEKFile = filepath.Join(c.DataDir, "keys", "blob-kek")
	}
	c.setTSAServerDefaults()
}

// validate names the first bad field, as a YAML path.
func (c *Config) validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.Keys.Fingerprint != "" {
		fp, err := keys.ParseFingerprint(c.Keys.Fingerprint)
		if err != nil {
			return fmt.Errorf("keys.fingerprint: %w", err)
		}
		c.Keys.Fingerprint = fp
	}
	switch c.EventStore.Backend {
	case "sqlite":
	case "kafka":
		k := c.EventStore.Kafka
		if len(k.Brokers) == 0 {
			return errors.New("eventstore.kafka.brokers: at least one broker address is required")
		}
		for i, b := range k.Brokers {
			if _, _, err := net.SplitHostPort(b); err != nil {
				return fmt.Errorf("eventstore.kafka.brokers[%d]: %q is not host:port", i, b)
			}
		}
		if k.Topic == "" {
			return errors.New("eventstore.kafka.topic: required")
		}
		if k.Partitions < 0 {
			return errors.New("eventstore.kafka.partitions: must be positive")
		}
	default:
		return fmt.Errorf("eventstore.backend: %q is not sqlite or kafka", c.EventStore.Backend)
	}
	if err := c.validateTSAServer(); err != nil {
		return err
	}
	if err := c.Evidence.Records.Validate("evidence.records"); err != nil {
		return err
	}
	if err := c.Ops.validate(); err != nil {
		return err
	}
	if err := c.Blobs.validate(); err != nil {
		return err
	}
	if err := c.Retention.Validate(); err != nil {
		return fmt.Errorf("retention.%w", err)
	}
	if c.WebUI != nil {
		if err := c.WebUI.Validate(); err != nil {
			return fmt.Errorf("web_ui.%w", err)
		}
	}
	if c.Witnesses != nil {
		if err := c.Witnesses.Validate(); err != nil {
			return err
		}
	}
	for _, s := range c.registry.Sections() {
		if v, ok := c.sections[s.Key]; ok {
			if err := s.Validate(v); err != nil {
				return fmt.Errorf("%s.%w", s.Key, err)
			}
		}
	}
	return c.registry.CheckTransports(func(key string) bool { _, ok := c.sections[key]; return ok })
}

func (b *BlobsConfig) validate() error {
	switch b.Encryption {
	case "", "on", "off":
	default:
		return fmt.Errorf("blobs.encryption: %q is not on or off", b.Encryption)
	}
	switch b.Backend {
	case "local":
		if b.MaxPackedBytes < -1 {
			return fmt.Errorf("blobs.max_packed_bytes: %d is neither a size, 0 (default) nor -1 (no packs)", b.MaxPackedBytes)
		}
		return nil
	case "s3":
		if b.MaxPackedBytes != 0 {
			return errors.New("blobs.max_packed_bytes: applies to the local backend only")
		}
	default:
		return fmt.Errorf("blobs.backend: %q is not local or s3", b.Backend)
	}
	s := b.S3
	if _, _, err := net.SplitHostPort(s.Endpoint); err != nil {
		return fmt.Errorf("blobs.s3.endpoint: %q is not host:port", s.Endpoint)
	}
	if s.Bucket == "" {
		return errors.New("blobs.s3.bucket: required")
	}
	if s.AccessKeyFile == "" || s.SecretKeyFile == "" {
		return errors.New("blobs.s3.access_key_file and secret_key_file: required (the keys are read from files)")
	}
	if s.CAFile != "" && !s.TLS {
		return errors.New("blobs.s3.ca_file: set, but tls is off")
	}
	return nil
}
