package compose

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/poststelle/poststelle/internal/assembly"
)

// root is the repository, two directories up from this package.
const root = "../.."

// load runs the Compose loader over file with the checks `docker compose
// config` makes: schema validation, interpolation (from an empty
// environment, so that the machine's variables cannot hide a missing
// default), normalisation and consistency (every depends_on, volume,
// network and config a service names is defined).
func load(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	wd, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(wd),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	return opts.LoadProject(context.Background())
}

func project(t *testing.T) *types.Project {
	t.Helper()
	p, err := load(t, filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// TestLoaderRejects shows that the loader is the real one and the checks
// below can fail: broken copies of docker-compose.yml are refused.
func TestLoaderRejects(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"unknown service key", "    restart: unless-stopped\n", "    restart: unless-stopped\n    restrat: always\n", "restrat"},
		{"depends_on an undefined service", "      kafka3:\n        condition: service_healthy\n", "      kafka4:\n        condition: service_healthy\n", "kafka4"},
		{"undefined volume", "      - kafka1-data:/var/lib/kafka/data\n", "      - kafka9-data:/var/lib/kafka/data\n", "kafka9-data"},
		{"undefined config", "      - source: s3-identities\n", "      - source: s3-identitys\n", "s3-identitys"},
		{"interpolation without a value", "image: apache/kafka:4.1.1\n", "image: apache/kafka:${KAFKA_TAG?set KAFKA_TAG}\n", "KAFKA_TAG"},
		{"bad duration", "      interval: 5s\n", "      interval: fivesec\n", "fivesec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := string(orig)
			if !strings.Contains(s, tc.old) {
				t.Fatalf("docker-compose.yml no longer has %q; adapt the case", tc.old)
			}
			f := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(f, []byte(strings.Replace(s, tc.old, tc.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := load(t, f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestDependencies: every depends_on condition can be met — a
// service_healthy dependency has a healthcheck, a
// service_completed_successfully one is a one-shot job that is not
// restarted.
func TestDependencies(t *testing.T) {
	p := project(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on undefined %s", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "" && target.Restart != types.RestartPolicyNo {
					t.Errorf("%s waits for %s to complete, which restarts (%s)", name, dep, target.Restart)
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
}

// TestPublishedPorts: what the set-up publishes is on loopback only and no
// host port is taken twice (a replicated service may publish none, since
// its replicas would collide).
func TestPublishedPorts(t *testing.T) {
	p := project(t)
	seen := map[string]string{}
	for name, s := range p.Services {
		if len(s.Ports) > 0 && s.GetScale() > 1 {
			t.Errorf("%s runs %d replicas and publishes ports", name, s.GetScale())
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, not loopback", name, port.Published, port.HostIP)
			}
			if other, dup := seen[port.Published]; dup {
				t.Errorf("host port %s published by %s and %s", port.Published, other, name)
			}
			seen[port.Published] = name
		}
	}
}

// serverProperties reads the server.properties heredoc of a test script
// (test/integration/kafka/broker.sh or cluster.sh).
func serverProperties(t *testing.T, script string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, script))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "server.properties\" <<CONF"):
			in = true
		case line == "CONF":
			in = false
		case in:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q in server.properties", script, line)
			}
			props[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(props) == 0 {
		t.Fatalf("%s: no server.properties heredoc found", script)
	}
	return props
}

// kafkaEnv is the environment variable the apache/kafka image turns into
// the property (dots become underscores, upper case).
func kafkaEnv(prop string) string {
	return "KAFKA_" + strings.ToUpper(strings.ReplaceAll(prop, ".", "_"))
}

// addressProps differ per node and between loopback and the compose
// network; the topology test checks them apart.
var addressProps = map[string]bool{
	"node.id": true, "controller.quorum.voters": true, "listeners": true, "advertised.listeners": true,
	"listener.security.protocol.map": true, "log.dirs": true,
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

func kafkaServices(p *types.Project) []types.ServiceConfig {
	var ks []types.ServiceConfig
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, "apache/kafka:") {
			ks = append(ks, s)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].Name < ks[j].Name })
	return ks
}

// TestBrokers: three KRaft nodes, each broker and controller, with every
// setting the three-broker integration cluster (cluster.sh) runs with —
// replication factor 3, min.insync.replicas 2 — and one quorum of distinct
// node ids.
func TestBrokers(t *testing.T) {
	p := project(t)
	ks := kafkaServices(p)
	if len(ks) != 3 {
		t.Fatalf("%d Kafka services, want 3", len(ks))
	}
	cluster := serverProperties(t, "test/integration/kafka/cluster.sh")
	if cluster["default.replication.factor"] != "3" || cluster["min.insync.replicas"] != "2" {
		t.Fatalf("cluster.sh no longer runs replication factor 3 / min.insync.replicas 2: %v", cluster)
	}
	single := serverProperties(t, "test/integration/kafka/broker.sh")
	for k, v := range single {
		replication := strings.Contains(k, "replication") || strings.Contains(k, "min.i")
		if !addressProps[k] && !replication && cluster[k] != v {
			t.Errorf("broker.sh sets %s=%s, cluster.sh %q: the two test brokers disagree", k, v, cluster[k])
		}
	}
	var voters []string
	ids := map[string]string{}
	for i, s := range ks {
		if s.GetScale() != 1 {
			t.Errorf("%s: %d replicas of one Kafka node", s.Name, s.GetScale())
		}
		for k, v := range cluster {
			if addressProps[k] {
				continue
			}
			if got := env(s, kafkaEnv(k)); got != v {
				t.Errorf("%s: %s=%q, cluster.sh has %s=%s", s.Name, kafkaEnv(k), got, k, v)
			}
		}
		if env(s, "KAFKA_PROCESS_ROLES") != "broker,controller" {
			t.Errorf("%s: roles %q", s.Name, env(s, "KAFKA_PROCESS_ROLES"))
		}
		id := env(s, "KAFKA_NODE_ID")
		if other, dup := ids[id]; dup || id == "" {
			t.Errorf("%s: node id %q (also %s)", s.Name, id, other)
		}
		ids[id] = s.Name
		voters = append(voters, fmt.Sprintf("%s@%s:9093", id, s.Name))
		if !slices.Contains(strings.Split(env(s, "KAFKA_ADVERTISED_LISTENERS"), ","), "PLAINTEXT://"+s.Name+":9092") {
			t.Errorf("%s advertises %q, not PLAINTEXT://%s:9092", s.Name, env(s, "KAFKA_ADVERTISED_LISTENERS"), s.Name)
		}
		if env(s, "CLUSTER_ID") != env(ks[0], "CLUSTER_ID") || env(s, "CLUSTER_ID") == "" {
			t.Errorf("%s: cluster id %q, %s has %q", s.Name, env(s, "CLUSTER_ID"), ks[0].Name, env(ks[0], "CLUSTER_ID"))
		}
		if len(s.Volumes) != 1 || s.Volumes[0].Type != types.VolumeTypeVolume || s.Volumes[0].Target != env(s, "KAFKA_LOG_DIRS") {
			t.Errorf("%s: log.dirs %q is not on a volume of its own: %+v", s.Name, env(s, "KAFKA_LOG_DIRS"), s.Volumes)
		}
		for _, o := range ks[:i] {
			if len(o.Volumes) > 0 && len(s.Volumes) > 0 && o.Volumes[0].Source == s.Volumes[0].Source {
				t.Errorf("%s and %s share the volume %s", o.Name, s.Name, s.Volumes[0].Source)
			}
		}
		if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "localhost:9092") {
			t.Errorf("%s: no healthcheck asking its own broker", s.Name)
		}
	}
	want := strings.Join(voters, ",")
	for _, s := range ks {
		if got := env(s, "KAFKA_CONTROLLER_QUORUM_VOTERS"); got != want {
			t.Errorf("%s: voters %q, want %q", s.Name, got, want)
		}
	}
	// The host listener the integration tests' clients use.
	k1 := ks[0]
	if !strings.Contains(env(k1, "KAFKA_ADVERTISED_LISTENERS"), "HOST://127.0.0.1:19092") ||
		len(k1.Ports) != 1 || k1.Ports[0].Published != "19092" || k1.Ports[0].Target != 19092 {
		t.Errorf("%s: host listener %q ports %+v, want 127.0.0.1:19092", k1.Name, env(k1, "KAFKA_ADVERTISED_LISTENERS"), k1.Ports)
	}
}

// gateways are the services built from the Dockerfile that serve.
func gateways(p *types.Project) []types.ServiceConfig {
	var gs []types.ServiceConfig
	for _, s := range p.Services {
		if s.Build != nil && len(s.Command) > 0 && s.Command[0] == "serve" {
			gs = append(gs, s)
		}
	}
	return gs
}

// configFor returns the content of the compose config mounted at target in
// s.
func configFor(t *testing.T, p *types.Project, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, c := range s.Configs {
		if c.Target == target {
			cfg, ok := p.Configs[c.Source]
			if !ok || cfg.Content == "" {
				t.Fatalf("%s: config %s has no inline content", s.Name, c.Source)
			}
			return cfg.Content
		}
	}
	t.Fatalf("%s mounts nothing at %s", s.Name, target)
	return ""
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestGateways: two gateway processes on one configuration that names all
// three brokers, the replication factor the brokers enforce, the S3 server
// and the bucket the bucket job creates, key files mounted where it reads
// them, the KEK of encryption at rest, and a healthcheck on its own /readyz.
func TestGateways(t *testing.T) {
	p := project(t)
	gs := gateways(p)
	replicas := 0
	for _, g := range gs {
		replicas += g.GetScale()
	}
	if replicas != 2 {
		t.Fatalf("%d gateway processes, want 2", replicas)
	}
	for _, g := range gs {
		path := flagValue(g.Command, "--config")
		content := configFor(t, p, g, path)
		f := filepath.Join(t.TempDir(), "poststelle.yaml")
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := assembly.LoadConfig(f)
		if err != nil {
			t.Fatalf("%s: the gateway refuses its configuration: %v", g.Name, err)
		}
		checkLog(t, p, g, cfg)
		checkBlobs(t, p, g, cfg)
		checkKeys(t, p, g, cfg)
		checkKEK(t, p, g, cfg)
		// The healthcheck runs `poststelle ready` on the same configuration,
		// which asks ops.listen's /readyz.
		hc := g.HealthCheck
		if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || !slices.Contains(hc.Test, "ready") ||
			flagValue(hc.Test, "--config") != path {
			t.Errorf("%s: healthcheck %v does not run `poststelle ready --config %s`", g.Name, hc, path)
		}
		if _, _, err := net.SplitHostPort(cfg.Ops.Listen); err != nil {
			t.Errorf("%s: ops.listen %q: %v", g.Name, cfg.Ops.Listen, err)
		}
		for _, dep := range kafkaServices(p) {
			if d, ok := g.DependsOn[dep.Name]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", g.Name, dep.Name)
			}
		}
	}
}

func checkLog(t *testing.T, p *types.Project, g types.ServiceConfig, cfg *assembly.Config) {
	t.Helper()
	if cfg.EventStore.Backend != "kafka" {
		t.Fatalf("%s: eventstore.backend %q", g.Name, cfg.EventStore.Backend)
	}
	var want []string
	for _, k := range kafkaServices(p) {
		want = append(want, k.Name+":9092")
		if fmt.Sprint(cfg.EventStore.Kafka.ReplicationFactor) != env(k, "KAFKA_DEFAULT_REPLICATION_FACTOR") {
			t.Errorf("%s: replication_factor %d, %s defaults to %s", g.Name, cfg.EventStore.Kafka.ReplicationFactor,
				k.Name, env(k, "KAFKA_DEFAULT_REPLICATION_FACTOR"))
		}
	}
	got := slices.Clone(cfg.EventStore.Kafka.Brokers)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: brokers %v, want all of %v", g.Name, cfg.EventStore.Kafka.Brokers, want)
	}
}

func checkBlobs(t *testing.T, p *types.Project, g types.ServiceConfig, cfg *assembly.Config) {
	t.Helper()
	s3 := cfg.Blobs.S3
	if cfg.Blobs.Backend != "s3" {
		t.Fatalf("%s: blobs.backend %q", g.Name, cfg.Blobs.Backend)
	}
	host, port, err := net.SplitHostPort(s3.Endpoint)
	if err != nil {
		t.Fatalf("%s: blobs.s3.endpoint %q: %v", g.Name, s3.Endpoint, err)
	}
	server, ok := p.Services[host]
	if !ok || !slices.Contains(server.Command, "-s3.port="+port) {
		t.Errorf("%s: blobs.s3.endpoint %s is no service serving S3 on that port", g.Name, s3.Endpoint)
	}
	var seaweeds int
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, "chrislusf/seaweedfs:") && slices.Contains(s.Command, "server") {
			seaweeds++
		}
	}
	if seaweeds != 1 {
		t.Errorf("%d S3 servers, want one for the cluster", seaweeds)
	}
	if d, ok := g.DependsOn["bucket"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("%s does not wait for the bucket job", g.Name)
	}
	if job := strings.Join(p.Services["bucket"].Command, " "); !strings.Contains(job, "s3.bucket.create -name "+s3.Bucket+"'") {
		t.Errorf("the bucket job %q does not create %q", job, s3.Bucket)
	}
	// The gateway's key files hold what the S3 server's identities accept.
	access := configFor(t, p, g, s3.AccessKeyFile)
	secret := configFor(t, p, g, s3.SecretKeyFile)
	var ids struct {
		Identities []struct {
			Credentials []struct{ AccessKey, SecretKey string } `json:"credentials"`
		} `json:"identities"`
	}
	s3conf := strings.TrimPrefix(flagOf(server.Command, "-s3.config="), "")
	if err := json.Unmarshal([]byte(configFor(t, p, server, s3conf)), &ids); err != nil {
		t.Fatalf("%s's identities %s: %v", host, s3conf, err)
	}
	found := false
	for _, id := range ids.Identities {
		for _, c := range id.Credentials {
			found = found || (c.AccessKey == strings.TrimSpace(access) && c.SecretKey == strings.TrimSpace(secret))
		}
	}
	if !found {
		t.Errorf("%s's S3 keys are not an identity of %s", g.Name, host)
	}
}

func flagOf(args []string, prefix string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	return ""
}

// checkKeys: the gateway reads its signing key from the volume the keys
// job wrote it to.
func checkKeys(t *testing.T, p *types.Project, g types.ServiceConfig, cfg *assembly.Config) {
	t.Helper()
	if d, ok := g.DependsOn["keys"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("%s does not wait for the keys job", g.Name)
	}
	vol := volumeOf(g, cfg.Keys.SigningKey)
	if vol == "" || volumeOf(p.Services["keys"], cfg.Keys.SigningKey) != vol {
		t.Errorf("%s: signing key %s is not on the volume the keys job writes", g.Name, cfg.Keys.SigningKey)
	}
}

// volumeOf names the named volume s has file on, "" when none.
func volumeOf(s types.ServiceConfig, file string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && strings.HasPrefix(file, v.Target+"/") {
			return v.Source
		}
	}
	return ""
}

// checkKEK: the gateways encrypt their blobs at rest under one KEK (serve
// never makes one for S3), read from the keys volume, where the keys job
// installs it with mode 0600 for the gateway's user from a file secret the
// operator makes; that file is kept out of the repository.
func checkKEK(t *testing.T, p *types.Project, g types.ServiceConfig, cfg *assembly.Config) {
	t.Helper()
	if cfg.Blobs.Encryption == "off" {
		t.Fatalf("%s: blobs.encryption is off", g.Name)
	}
	kek := cfg.Blobs.KEKFile
	keys := p.Services["keys"]
	if vol := volumeOf(g, kek); vol == "" || volumeOf(keys, kek) != vol {
		t.Errorf("%s: kek_file %s is not on the volume the keys job writes", g.Name, kek)
	}
	var from, file string
	for _, sc := range keys.Secrets {
		if def, ok := p.Secrets[sc.Source]; ok && def.File != "" {
			from, file = sc.Target, def.File
			if from == "" {
				from = sc.Source
			}
			if !strings.HasPrefix(from, "/") {
				from = "/run/secrets/" + from
			}
		}
	}
	if from == "" {
		t.Fatalf("the keys job has no file secret to install the KEK from")
	}
	job := strings.Join(keys.Command, "\n")
	for _, want := range []string{"install -m 0600 " + from + " " + kek, "cmp -s " + from + " " + kek, "chown -R 65532:65532 " + filepath.Dir(kek)} {
		if !strings.Contains(job, want) {
			t.Errorf("the keys job does not run %q", want)
		}
	}
	rel, err := filepath.Rel(mustAbs(t, root), file)
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(string(ignore), "\n"), "/"+filepath.ToSlash(rel)) {
		t.Errorf("the KEK secret's file %s is not in .gitignore", rel)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// dockerfileStages lists the stage names (FROM … AS name) and the COPY
// sources taken from the build context.
func dockerfileStages(t *testing.T, path string) (stages, sources []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?i)^FROM\s+\S+(?:\s+AS\s+(\S+))?`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := from.FindStringSubmatch(line); m != nil {
			if m[1] != "" {
				stages = append(stages, m[1])
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 && strings.EqualFold(f[0], "COPY") && !strings.HasPrefix(f[1], "--from") {
			var args []string
			for _, a := range f[1:] {
				if !strings.HasPrefix(a, "--") {
					args = append(args, a)
				}
			}
			sources = append(sources, args[:len(args)-1]...)
		}
	}
	return stages, sources
}

// TestReferencedFiles: every file the compose file or the Dockerfile
// names in the repository exists — build contexts, Dockerfiles, build
// targets, file-based configs, COPY sources, the package go build builds.
func TestReferencedFiles(t *testing.T) {
	p := project(t)
	built := 0
	for name, s := range p.Services {
		for _, c := range s.Configs {
			cfg := p.Configs[c.Source]
			if cfg.File != "" {
				if _, err := os.Stat(cfg.File); err != nil {
					t.Errorf("%s: config %s: %v", name, c.Source, err)
				}
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount: %v", name, err)
				}
			}
		}
		if s.Build == nil {
			continue
		}
		built++
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		stages, sources := dockerfileStages(t, df)
		if s.Build.Target != "" && !slices.Contains(stages, s.Build.Target) {
			t.Errorf("%s: build target %q is no stage of %s (%v)", name, s.Build.Target, df, stages)
		}
		for _, src := range sources {
			if _, err := os.Stat(filepath.Join(s.Build.Context, src)); err != nil {
				t.Errorf("%s: %s copies %s: %v", name, df, src, err)
			}
		}
	}
	if built == 0 {
		t.Fatal("no service is built from the repository")
	}
}
