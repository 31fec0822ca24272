package decode

import (
	"fmt"
	"slices"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// typePrefix is the prefix of every type URL in an Any.
const typePrefix = "type.googleapis.com/"

// Type names of the typed_config payloads we implement.
const (
	hcmType          = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType     = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	routerType       = "envoy.extensions.filters.http.router.v3.Router"
	previousHostType = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
	httpOptionsType  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	httpFilterType   = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter"
)

// allowedAny is every Any payload type we accept; where each may appear is
// checked by the typed decoders.
var allowedAny = map[protoreflect.FullName]bool{
	hcmType:          true,
	tcpProxyType:     true,
	routerType:       true,
	previousHostType: true,
	httpOptionsType:  true,
}

// allowed lists, per message type, the fields the sidecar implements (or,
// for names and stat prefixes, that are harmless to accept). A populated
// field outside its message's list is a NACK naming it. Messages are only
// walked when a parent's allowed field holds them, so listing a container
// field allows the container, not everything inside it.
var allowed = map[protoreflect.FullName][]protoreflect.Name{
	// Listener (LDS).
	"envoy.config.listener.v3.Listener": {"name", "address", "stat_prefix", "filter_chains",
		"per_connection_buffer_limit_bytes", "traffic_direction"},
	"envoy.config.core.v3.Address":         {"socket_address"},
	"envoy.config.core.v3.SocketAddress":   {"protocol", "address", "port_value"},
	"envoy.config.listener.v3.FilterChain": {"filters", "name"},
	"envoy.config.listener.v3.Filter":      {"name", "typed_config"},
	hcmType:                                {"codec_type", "stat_prefix", "rds", "route_config", "http_filters", "stream_idle_timeout", "request_timeout", "use_remote_address", "generate_request_id", "upgrade_configs"},
	// Only websocket, which the proxy always passes through (checked in
	// the decoder).
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": {"upgrade_type", "enabled"},
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds":                                 {"config_source", "route_config_name"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                          {"name", "typed_config", "is_optional", "disabled"},
	"envoy.config.core.v3.ConfigSource":                                                               {"ads", "self", "api_config_source", "resource_api_version", "initial_fetch_timeout"},
	"envoy.config.core.v3.AggregatedConfigSource":                                                     {},
	"envoy.config.core.v3.SelfConfigSource":                                                           {"transport_api_version"},
	"envoy.config.core.v3.ApiConfigSource":                                                            {"api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only"},
	"envoy.config.core.v3.GrpcService":                                                                {"envoy_grpc", "timeout"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":                                                      {"cluster_name"},
	routerType:   {},
	tcpProxyType: {"stat_prefix", "cluster", "idle_timeout"},

	// RouteConfiguration (RDS).
	"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "validate_clusters"},
	"envoy.config.route.v3.VirtualHost": {"name", "domains", "routes", "retry_policy", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "per_request_buffer_limit_bytes",
		"include_request_attempt_count", "include_attempt_count_in_response"},
	"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "direct_response", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "per_request_buffer_limit_bytes"},
	"envoy.config.route.v3.RouteMatch":                          {"prefix", "path", "safe_regex", "case_sensitive", "headers", "query_parameters", "grpc"},
	"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions":    {},
	"envoy.type.matcher.v3.RegexMatcher":                        {"google_re2", "regex"},
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":              {},
	"envoy.config.route.v3.HeaderMatcher":                       {"name", "exact_match", "safe_regex_match", "present_match", "prefix_match", "suffix_match", "contains_match", "string_match", "invert_match"},
	"envoy.type.matcher.v3.StringMatcher":                       {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"},
	"envoy.config.route.v3.QueryParameterMatcher":               {"name", "string_match", "present_match"},
	"envoy.config.route.v3.RouteAction":                         {"cluster", "weighted_clusters", "prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "timeout", "idle_timeout", "retry_policy", "hash_policy"},
	"envoy.config.route.v3.WeightedCluster":                     {"clusters", "total_weight"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight":       {"name", "weight", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"},
	"envoy.type.matcher.v3.RegexMatchAndSubstitute":             {"pattern", "substitution"},
	"envoy.config.route.v3.RetryPolicy":                         {"retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout", "retry_host_predicate", "host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off", "retriable_headers", "rate_limited_retry_back_off"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":            {"base_interval", "max_interval"},
	"envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff": {"reset_headers", "max_interval"},
	"envoy.config.route.v3.RetryPolicy.ResetHeader":             {"name", "format"},
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate":      {"name", "typed_config"},
	previousHostType: {},
	"envoy.config.route.v3.RouteAction.HashPolicy":                      {"header", "cookie", "connection_properties", "query_parameter", "terminal"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Header":               {"header_name"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":               {"name", "ttl", "path"},
	"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties": {"source_ip"},
	"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter":       {"name"},
	"envoy.config.route.v3.RedirectAction":                              {"https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect", "prefix_rewrite", "response_code", "strip_query"},
	"envoy.config.route.v3.DirectResponseAction":                        {"status", "body"},
	"envoy.config.core.v3.DataSource":                                   {"inline_bytes", "inline_string"},
	"envoy.config.core.v3.HeaderValueOption":                            {"header", "append", "append_action"},
	"envoy.config.core.v3.HeaderValue":                                  {"key", "value"},

	// Cluster (CDS).
	// dns_lookup_family picks a LOGICAL_DNS cluster's address family; STATIC
	// and EDS clusters resolve nothing (go-control-plane's examples set it
	// anyway). dns_refresh_rate and respect_dns_ttl bound how stale
	// Envoy's cached address may get: ours is resolved for every new
	// connection, never staler.
	"envoy.config.cluster.v3.Cluster": {"name", "alt_stat_name", "type", "eds_cluster_config", "connect_timeout", "dns_lookup_family",
		"dns_refresh_rate", "respect_dns_ttl",
		"lb_policy", "load_assignment", "circuit_breakers", "http2_protocol_options",
		"typed_extension_protocol_options", "outlier_detection", "ring_hash_lb_config", "maglev_lb_config",
		"least_request_lb_config", "common_lb_config"},
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig":               {"eds_config", "service_name"},
	"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig":           {"choice_count"},
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":               {"minimum_ring_size", "maximum_ring_size", "hash_function"},
	"envoy.config.cluster.v3.Cluster.MaglevLbConfig":                 {"table_size"},
	"envoy.config.cluster.v3.Cluster.CommonLbConfig":                 {"healthy_panic_threshold"},
	"envoy.type.v3.Percent":                                          {"value"},
	"envoy.config.cluster.v3.CircuitBreakers":                        {"thresholds"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds":             {"priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget": {"budget_percent", "min_retry_concurrency"},
	"envoy.config.cluster.v3.OutlierDetection": {"consecutive_5xx", "interval", "base_ejection_time",
		"max_ejection_percent", "enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts",
		"success_rate_request_volume", "success_rate_stdev_factor", "consecutive_gateway_failure",
		"enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
		"consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure",
		"failure_percentage_threshold", "enforcing_failure_percentage", "failure_percentage_minimum_hosts",
		"failure_percentage_request_volume", "max_ejection_time", "max_ejection_time_jitter"},
	"envoy.config.core.v3.Http2ProtocolOptions": {},
	"envoy.config.core.v3.Http1ProtocolOptions": {},
	httpOptionsType: {"explicit_http_config"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": {"http_protocol_options", "http2_protocol_options"},

	// ClusterLoadAssignment (EDS).
	"envoy.config.endpoint.v3.ClusterLoadAssignment": {"cluster_name", "endpoints"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":   {"locality", "lb_endpoints", "load_balancing_weight", "priority"},
	"envoy.config.core.v3.Locality":                  {"region", "zone", "sub_zone"},
	"envoy.config.endpoint.v3.LbEndpoint":            {"endpoint", "health_status", "load_balancing_weight"},
	"envoy.config.endpoint.v3.Endpoint":              {"address", "hostname"},
}

// allowIndex is allowed as sets, built once.
var allowIndex = func() map[protoreflect.FullName]map[protoreflect.Name]bool {
	idx := make(map[protoreflect.FullName]map[protoreflect.Name]bool, len(allowed))
	for msg, fields := range allowed {
		set := make(map[protoreflect.Name]bool, len(fields))
		for _, f := range fields {
			set[f] = true
		}
		idx[msg] = set
	}
	return idx
}()

// UnsupportedError says which populated field the sidecar does not
// implement. Path is the field path from the resource root.
type UnsupportedError struct {
	Path   string // e.g. filter_chains[0].filters[0].typed_config
	Field  string // the field's proto name
	Reason string // "is not supported" unless more specific
}

func (e *UnsupportedError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("field %s %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s: field %s %s", e.Path, e.Field, e.Reason)
}

// checkSupported walks m and returns an error naming the first populated
// field (in field-number order, depth first) that is not in the allow-list,
// an Any whose type we do not implement, or unknown wire fields.
func checkSupported(m proto.Message) error {
	werr := walk(m.ProtoReflect())
	if werr == nil {
		return nil
	}
	// Segments were collected innermost first, while unwinding; the path
	// is only built on error, keeping the accepting walk allocation-free.
	slices.Reverse(werr.segs)
	path := strings.Join(werr.segs, ".")
	if u, ok := werr.err.(*UnsupportedError); ok {
		u.Path = path
		return u
	}
	if path == "" {
		return werr.err
	}
	return fmt.Errorf("%s: %w", path, werr.err)
}

// walkError carries an error and the path segments above it.
type walkError struct {
	segs []string
	err  error
}

func (w *walkError) under(seg string) *walkError {
	w.segs = append(w.segs, seg)
	return w
}

func walk(m protoreflect.Message) *walkError {
	md := m.Descriptor()
	name := md.FullName()
	if name == "google.protobuf.Any" {
		return walkAny(m)
	}
	if strings.HasPrefix(string(name), "google.protobuf.") {
		// Well-known scalar wrappers and Duration carry no options.
		return nil
	}
	if raw := m.GetUnknown(); len(raw) > 0 {
		return &walkError{err: &UnsupportedError{Field: "(unknown field)", Reason: fmt.Sprintf("in %s is not known to this sidecar", name)}}
	}
	if name == httpFilterType {
		if f, ok := m.Interface().(*hcmv3.HttpFilter); ok && skipped(f) {
			// A filter the sidecar does not run: nothing in it applies.
			return nil
		}
	}
	set, ok := allowIndex[name]
	if !ok {
		return &walkError{err: &UnsupportedError{Field: string(name), Reason: "is not supported"}}
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if !set[fd.Name()] {
			return &walkError{err: &UnsupportedError{Field: string(fd.Name()), Reason: "is not supported"}}
		}
		if err := walkValue(fd, m.Get(fd)); err != nil {
			return err
		}
	}
	return nil
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) *walkError {
	switch {
	case fd.IsList():
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return nil
		}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := walk(l.Get(i).Message()); err != nil {
				return err.under(fmt.Sprintf("%s[%d]", fd.Name(), i))
			}
		}
	case fd.IsMap():
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return nil
		}
		mp := v.Map()
		keys := make([]protoreflect.MapKey, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if err := walk(mp.Get(k).Message()); err != nil {
				return err.under(fmt.Sprintf("%s[%q]", fd.Name(), k.String()))
			}
		}
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		if err := walk(v.Message()); err != nil {
			return err.under(string(fd.Name()))
		}
	}
	return nil
}

// walkAny checks the type URL and walks the payload.
func walkAny(m protoreflect.Message) *walkError {
	fields := m.Descriptor().Fields()
	url := m.Get(fields.ByName("type_url")).String()
	value := m.Get(fields.ByName("value")).Bytes()
	// Like anypb, the type name is what follows the last '/'.
	full := protoreflect.FullName(url[strings.LastIndexByte(url, '/')+1:])
	if !allowedAny[full] {
		return &walkError{err: &UnsupportedError{Field: "type_url", Reason: fmt.Sprintf("%q is not supported", url)}}
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(full)
	if err != nil {
		return &walkError{err: fmt.Errorf("type %q: %w", url, err)}
	}
	payload := mt.New()
	if err := proto.Unmarshal(value, payload.Interface()); err != nil {
		return &walkError{err: fmt.Errorf("%s: %w", full, err)}
	}
	return walk(payload)
}
