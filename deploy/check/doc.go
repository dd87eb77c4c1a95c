// Package check holds the tests of the deployment files (the Dockerfile
// and the Kubernetes manifest) that need parsers the actord module does
// not: BuildKit's Dockerfile parser and linter (the checks `docker build
// --check` runs) and the Kubernetes API types. It is a module of its own so
// that those stay out of actord's dependencies. Run it with
//
//	cd deploy/check && go test ./...
//
// (.ci/run does). The systemd unit and the flags in all three files are
// checked by the actord module's own tests (cmd/actord/deploy_test.go).
package check
