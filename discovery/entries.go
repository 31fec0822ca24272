package discovery

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// decodedEntry is one config entry after decoding: exactly one of the
// typed pointers is set, or errs is not empty.
type decodedEntry struct {
	modifyIndex     uint64
	proxyDefaults   *mesh.ProxyDefaults
	serviceDefaults *mesh.ServiceDefaults
	router          *mesh.ServiceRouter
	splitter        *mesh.ServiceSplitter
	resolver        *mesh.ServiceResolver
	errs            []mesh.EntryError
}

// buildConfig decodes every raw entry (reusing the cached decoding of an
// entry whose ModifyIndex did not move) and falls back to lastGood for
// entries that do not decode.
func (b *builder) buildConfig(entries map[mesh.EntryKind][]RawEntry, lastGood *mesh.Config) mesh.Config {
	cfg := mesh.Config{
		ServiceDefaults: map[string]*mesh.ServiceDefaults{},
		Routers:         map[string]*mesh.ServiceRouter{},
		Splitters:       map[string]*mesh.ServiceSplitter{},
		Resolvers:       map[string]*mesh.ServiceResolver{},
	}
	if lastGood == nil {
		lastGood = &mesh.Config{}
	}
	seen := make(map[mesh.EntryRef]bool, len(b.entries))
	for kind, list := range entries {
		for _, raw := range list {
			ref := mesh.EntryRef{Kind: kind, Name: stringField(raw, "Name")}
			idx := uint64Field(raw, "ModifyIndex")
			seen[ref] = true
			d := b.entries[ref]
			if d == nil || idx == 0 || d.modifyIndex != idx {
				d = decodeEntry(ref, raw)
				d.modifyIndex = idx
				b.entries[ref] = d
			}
			if len(d.errs) > 0 {
				cfg.Errors = append(cfg.Errors, d.errs...)
				keepLastGood(&cfg, lastGood, ref)
				continue
			}
			switch {
			case d.proxyDefaults != nil:
				cfg.ProxyDefaults = d.proxyDefaults
			case d.serviceDefaults != nil:
				cfg.ServiceDefaults[ref.Name] = d.serviceDefaults
			case d.router != nil:
				cfg.Routers[ref.Name] = d.router
			case d.splitter != nil:
				cfg.Splitters[ref.Name] = d.splitter
			case d.resolver != nil:
				cfg.Resolvers[ref.Name] = d.resolver
			}
		}
	}
	for ref := range b.entries {
		if !seen[ref] {
			delete(b.entries, ref)
		}
	}
	slices.SortFunc(cfg.Errors, func(a, b mesh.EntryError) int {
		return cmp.Or(cmp.Compare(a.Entry.Kind, b.Entry.Kind), cmp.Compare(a.Entry.Name, b.Entry.Name),
			cmp.Compare(a.Field, b.Field), cmp.Compare(a.Err, b.Err))
	})
	return cfg
}

// keepLastGood copies the previous good version of ref, if any, into cfg.
func keepLastGood(cfg, lastGood *mesh.Config, ref mesh.EntryRef) {
	switch ref.Kind {
	case mesh.KindProxyDefaults:
		cfg.ProxyDefaults = lastGood.ProxyDefaults
	case mesh.KindServiceDefaults:
		if v := lastGood.ServiceDefaults[ref.Name]; v != nil {
			cfg.ServiceDefaults[ref.Name] = v
		}
	case mesh.KindServiceRouter:
		if v := lastGood.Routers[ref.Name]; v != nil {
			cfg.Routers[ref.Name] = v
		}
	case mesh.KindServiceSplitter:
		if v := lastGood.Splitters[ref.Name]; v != nil {
			cfg.Splitters[ref.Name] = v
		}
	case mesh.KindServiceResolver:
		if v := lastGood.Resolvers[ref.Name]; v != nil {
			cfg.Resolvers[ref.Name] = v
		}
	}
}

// entryErrors collects the problems of one entry, each naming its field.
type entryErrors struct {
	ref  mesh.EntryRef
	errs []mesh.EntryError
}

func (e *entryErrors) add(field string, err error) {
	e.errs = append(e.errs, mesh.EntryError{Entry: e.ref, Field: field, Err: err.Error()})
}

// decodeEntry decodes and validates one raw entry.
func decodeEntry(ref mesh.EntryRef, raw RawEntry) *decodedEntry {
	ee := &entryErrors{ref: ref}
	d := &decodedEntry{}
	generic, err := api.DecodeConfigEntry(map[string]any(raw))
	if err != nil {
		ee.add(decodeErrorField(err), fmt.Errorf("decoding %s: %s", ref, compactError(err)))
		d.errs = ee.errs
		return d
	}
	switch e := generic.(type) {
	case *api.ProxyConfigEntry:
		d.proxyDefaults = decodeProxyDefaults(e, ee)
	case *api.ServiceConfigEntry:
		d.serviceDefaults = decodeServiceDefaults(e, ee)
	case *api.ServiceRouterConfigEntry:
		d.router = decodeRouter(e, ee)
	case *api.ServiceSplitterConfigEntry:
		d.splitter = decodeSplitter(e, ee)
	case *api.ServiceResolverConfigEntry:
		d.resolver = decodeResolver(e, ee)
	default:
		ee.add("Kind", fmt.Errorf("unsupported config entry kind %q", generic.GetKind()))
	}
	checkExtensions(d, ee)
	if generic.GetKind() != string(ref.Kind) {
		ee.add("Kind", fmt.Errorf("entry of kind %q listed under %q", generic.GetKind(), ref.Kind))
	}
	if len(ee.errs) > 0 {
		return &decodedEntry{errs: ee.errs}
	}
	return d
}

var quotedField = regexp.MustCompile(`'([^']+)'`)

// decodeErrorField extracts the field path mapstructure names in its error
// ("'Routes[0].Destination.RequestTimeout' ..."), or "" when it names none.
func decodeErrorField(err error) string {
	m := quotedField.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	return m[1]
}

func compactError(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// checkProtocol accepts the protocols Consul documents for service-defaults
// and proxy-defaults. Consul itself stores any string (and treats unknown
// ones as tcp); we refuse them so a typo is reported instead of silently
// downgrading a service to plain TCP.
func checkProtocol(p string) error {
	switch p {
	case "", "tcp", "http", "http2", "grpc":
		return nil
	}
	return fmt.Errorf("unknown protocol %q (want tcp, http, http2 or grpc)", p)
}

func decodeProxyDefaults(e *api.ProxyConfigEntry, ee *entryErrors) *mesh.ProxyDefaults {
	pd := &mesh.ProxyDefaults{
		Config:      renderConfig(e.Config),
		MeshGateway: string(e.MeshGateway.Mode),
		Meta:        nilIfEmptyMap(e.Meta),
	}
	if v, ok := e.Config["protocol"]; ok {
		s, isString := v.(string)
		if !isString {
			ee.add("Config.protocol", fmt.Errorf("protocol is %T, want a string", v))
		} else if err := checkProtocol(s); err != nil {
			ee.add("Config.protocol", err)
		}
		pd.Protocol = s
	}
	return pd
}

func decodeServiceDefaults(e *api.ServiceConfigEntry, ee *entryErrors) *mesh.ServiceDefaults {
	sd := &mesh.ServiceDefaults{
		Name:                  e.Name,
		Protocol:              e.Protocol,
		MaxInboundConnections: e.MaxInboundConnections,
		LocalConnectTimeout:   time.Duration(e.LocalConnectTimeoutMs) * time.Millisecond,
		LocalRequestTimeout:   time.Duration(e.LocalRequestTimeoutMs) * time.Millisecond,
		Meta:                  nilIfEmptyMap(e.Meta),
	}
	if err := checkProtocol(e.Protocol); err != nil {
		ee.add("Protocol", err)
	}
	if e.UpstreamConfig != nil {
		if d := e.UpstreamConfig.Defaults; d != nil {
			u := decodeUpstreamConfig(d, "UpstreamConfig.Defaults", ee)
			sd.UpstreamDefaults = &u
		}
		for i, o := range e.UpstreamConfig.Overrides {
			if o == nil {
				continue
			}
			sd.UpstreamOverrides = append(sd.UpstreamOverrides,
				decodeUpstreamConfig(o, fmt.Sprintf("UpstreamConfig.Overrides[%d]", i), ee))
		}
	}
	return sd
}

func decodeUpstreamConfig(u *api.UpstreamConfig, field string, ee *entryErrors) mesh.UpstreamConfig {
	out := mesh.UpstreamConfig{
		Name:           u.Name,
		Protocol:       u.Protocol,
		ConnectTimeout: time.Duration(u.ConnectTimeoutMs) * time.Millisecond,
	}
	if err := checkProtocol(u.Protocol); err != nil {
		ee.add(field+".Protocol", err)
	}
	if u.ConnectTimeoutMs < 0 {
		ee.add(field+".ConnectTimeoutMs", fmt.Errorf("negative timeout %d", u.ConnectTimeoutMs))
	}
	if l := u.Limits; l != nil {
		out.Limits = &mesh.UpstreamLimits{
			MaxConnections:        l.MaxConnections,
			MaxPendingRequests:    l.MaxPendingRequests,
			MaxConcurrentRequests: l.MaxConcurrentRequests,
		}
	}
	if p := u.PassiveHealthCheck; p != nil {
		out.PassiveHealthCheck = &mesh.PassiveHealthCheck{
			Interval:                p.Interval,
			MaxFailures:             p.MaxFailures,
			EnforcingConsecutive5xx: p.EnforcingConsecutive5xx,
			MaxEjectionPercent:      p.MaxEjectionPercent,
			BaseEjectionTime:        p.BaseEjectionTime,
		}
		if p.Interval < 0 {
			ee.add(field+".PassiveHealthCheck.Interval", fmt.Errorf("negative duration %s", p.Interval))
		}
	}
	return out
}

func stringField(raw RawEntry, key string) string {
	s, _ := raw[key].(string)
	return s
}

func uint64Field(raw RawEntry, key string) uint64 {
	switch v := raw[key].(type) {
	case float64:
		if v > 0 {
			return uint64(v)
		}
	case uint64:
		return v
	case int:
		if v > 0 {
			return uint64(v)
		}
	}
	return 0
}
