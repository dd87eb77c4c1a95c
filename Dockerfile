# syntax=docker/dockerfile:1
# check=error=true;experimental=all
# The actord image: a static binary on an empty base, run as an unprivileged
# user. Build from the repository's root:
#   docker build -t registry.example.com/actord:dev .
# The check directive above makes BuildKit fail the build on any lint
# warning, experimental rules included; deploy/check runs the same linter
# without Docker (docs/deploy.md, "Container image").

# GO_VERSION is the Go release the module is built and tested with.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# CGO off: a static binary, which the empty base below can run.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/actord ./cmd/actord \
 && install -d -m 0700 /out/data

FROM scratch
COPY --from=build /out/actord /actord
# The user's home, owned by it, mode 0700: the daemon's default data dir is
# $HOME/.actord, where `actord debug` run in the container (kubectl exec)
# also looks for the token. In Kubernetes a volume is mounted over it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV HOME=/data
# No user database in the image: a numeric, unprivileged user and group.
USER 65532:65532
# remote (actor traffic), gossip (TCP and UDP), metrics with /healthz and /readyz
EXPOSE 7700/tcp 7946/tcp 7946/udp 9100/tcp
ENTRYPOINT ["/actord"]
CMD ["run"]
