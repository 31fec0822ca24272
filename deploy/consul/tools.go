//go:build tools

// Package consul pins the Consul release that `make consul` builds:
// v1.14.11, the last MPL-2.0 release that resolves from the module proxy.
package consul

import _ "github.com/hashicorp/consul"
