// Package compose checks docker-compose.yml and the Dockerfile without a
// Docker daemon: the compose file is loaded by the Compose specification's
// own loader (what `docker compose config` runs), and its topology is held
// against what the Kafka and S3 integration tests prove. It is a module of
// its own so that the loader's dependencies stay out of the gateway's go.mod;
// test/integration/compose/run.sh runs it.
package compose
