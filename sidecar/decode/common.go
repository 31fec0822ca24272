package decode

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// duration returns d, or def when d is unset. A set zero stays zero (Envoy:
// 0 disables the timeout).
func duration(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func u32(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func u64(v *wrapperspb.UInt64Value, def uint64) uint64 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func boolean(v *wrapperspb.BoolValue, def bool) bool {
	if v == nil {
		return def
	}
	return v.GetValue()
}

// socketAddress renders a TCP socket address as host:port.
func socketAddress(a *corev3.Address, field string) (string, error) {
	return socketAddressOf(a, field, false)
}

// socketAddressOf is socketAddress; allowName also accepts a DNS name (a
// LOGICAL_DNS cluster's endpoint).
func socketAddressOf(a *corev3.Address, field string, allowName bool) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", fmt.Errorf("%s: socket_address is required", field)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", fmt.Errorf("%s.socket_address.protocol: %s is not supported", field, sa.GetProtocol())
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return "", fmt.Errorf("%s.socket_address.port_value: %d is not a TCP port", field, port)
	}
	if sa.GetAddress() == "" {
		return "", fmt.Errorf("%s.socket_address.address is required", field)
	}
	// Envoy: listener, STATIC and EDS addresses are IPs; only a DNS
	// cluster's endpoints are names.
	if net.ParseIP(sa.GetAddress()) == nil && !allowName {
		return "", fmt.Errorf("%s.socket_address.address: %q is not an IP address", field, sa.GetAddress())
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(port), 10)), nil
}

// adsSource checks that a ConfigSource points at the ADS stream, the only
// transport the sidecar has.
func adsSource(cs *corev3.ConfigSource, field string) error {
	if cs == nil {
		return fmt.Errorf("%s is required", field)
	}
	// The sidecar has one xDS server, the control plane it was started
	// with, and no bootstrap clusters. ads and self name that server; a
	// gRPC api_config_source (go-control-plane's example points RDS at its
	// bootstrap "xds_cluster") can only mean it too, so its resources are
	// fetched over the same ADS stream. REST and other transports cannot.
	switch {
	case cs.GetAds() != nil, cs.GetSelf() != nil:
	case cs.GetApiConfigSource() != nil:
		acs := cs.GetApiConfigSource()
		if t := acs.GetApiType(); t != corev3.ApiConfigSource_GRPC && t != corev3.ApiConfigSource_DELTA_GRPC && t != corev3.ApiConfigSource_AGGREGATED_GRPC && t != corev3.ApiConfigSource_AGGREGATED_DELTA_GRPC {
			return fmt.Errorf("%s.api_config_source.api_type: %s is not supported (the sidecar fetches everything over its ADS stream)", field, t)
		}
		if v := acs.GetTransportApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
			return fmt.Errorf("%s.api_config_source.transport_api_version: %s is not supported", field, v)
		}
	default:
		return fmt.Errorf("%s: only ads, self or a gRPC api_config_source is supported", field)
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		return fmt.Errorf("%s.resource_api_version: %s is not supported", field, v)
	}
	return nil
}

// errNoRegex is returned for a RegexMatcher without a pattern.
var errNoRegex = errors.New("regex is required")

// compileRegex compiles an RE2 safe_regex. anchored makes it a full match as
// Envoy's matchers are (RegexMatcher docs: "the regex must match the whole
// string"); regex_rewrite patterns are not anchored.
func compileRegex(m *matcherv3.RegexMatcher, anchored bool) (*regexp.Regexp, error) {
	expr := m.GetRegex()
	if expr == "" {
		return nil, errNoRegex
	}
	if anchored {
		expr = `^(?:` + expr + `)$`
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", m.GetRegex(), err)
	}
	return re, nil
}
