// Package deploy_test checks the deployment files under deploy/ against
// what exists here: the flags, environment variables and admin paths in
// the binaries' -h output, a real Consul agent for the service
// registrations and config entries, systemd-analyze for the units when
// the machine has it, a YAML parser for the Kubernetes manifests.
package deploy_test
