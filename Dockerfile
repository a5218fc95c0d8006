# syntax=docker/dockerfile:1
# The poststelle gateway: one static binary on distroless. The "tools" stage
# carries the same binary with a shell for one-shot jobs (key creation in
# docker-compose.yml).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/poststelle ./cmd/poststelle && mkdir -p /out/data/keys

FROM debian:bookworm-slim AS tools
COPY --from=build /out/poststelle /usr/local/bin/poststelle
ENTRYPOINT ["/usr/local/bin/poststelle"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/poststelle /usr/local/bin/poststelle
COPY --from=build --chown=65532:65532 /out/data /var/lib/poststelle
WORKDIR /var/lib/poststelle
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/poststelle"]
CMD ["serve", "--config", "/etc/poststelle/poststelle.yaml"]
