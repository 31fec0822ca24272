package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"
)

// update is one response, protocol-neutral.
type update struct {
	typeURL string
	version string
	nonce   string
	// full: the response holds the whole set of its type, so absent
	// resources are removed (SotW listeners and clusters).
	full      bool
	resources []wireResource
	removed   []string
}

// wireResource is one resource as received. name and version are set by
// Delta only.
type wireResource struct {
	name    string
	version string
	any     *anypb.Any
}

// handle applies u to st. It returns the new store and what it still
// waits for, or the unchanged store and the NACK error. When the new store
// is complete it is applied and published; last is the store behind the
// published config.
func (c *Client) handle(ctx context.Context, st *store, u *update, last **store, giveUp map[ref]bool) (*store, []ref, error) {
	next := make(map[string]*resource, len(st.byType[u.typeURL])+len(u.resources))
	if !u.full {
		maps.Copy(next, st.byType[u.typeURL])
	}
	var errs []error
	seen := make(map[string]bool, len(u.resources))
	for _, w := range u.resources {
		r, err := decodeResource(u.typeURL, w.name, w.any)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[r.name] {
			errs = append(errs, fmt.Errorf("%s %q: duplicate resource name in one response", shortType(u.typeURL), r.name))
			continue
		}
		seen[r.name] = true
		r.version = w.version
		if r.version == "" {
			r.version = u.version
		}
		next[r.name] = r
	}
	if len(errs) > 0 {
		return st, nil, errors.Join(errs...)
	}
	for _, name := range u.removed {
		delete(next, name)
	}
	cand := st.with(u.typeURL, next, u.version).prune()
	missing, err := c.tryApply(ctx, cand, last, giveUp, shortType(u.typeURL), u.version)
	if err != nil {
		return st, nil, err
	}
	return cand, missing, nil
}

// tryApply builds the config of cand and, when complete, applies and
// publishes it. It returns what is still missing, or the Apply error.
func (c *Client) tryApply(ctx context.Context, cand *store, last **store, giveUp map[ref]bool, trigger, version string) ([]ref, error) {
	cfg, missing := cand.build(giveUp)
	if cfg == nil {
		names := make([]string, 0, min(len(missing), 10))
		for _, r := range firstN(missing, 10) {
			names = append(names, r.String())
		}
		c.log.Info("xds update accepted, waiting for referenced resources",
			zap.String("type", trigger), zap.String("version", version),
			zap.Strings("missing", names), zap.Int("missing_count", len(missing)))
		return missing, nil
	}
	if *last != nil && sameResources(*last, cand) {
		// Same content (e.g. after a reconnect): keep the running config.
		if prev := c.applied.Load(); prev != nil {
			c.publish(&Applied{Config: prev.Config, Resources: cand.dump(), Versions: maps.Clone(cand.versions), At: prev.At})
			*last = cand
			return nil, nil
		}
	}
	if c.opts.Apply != nil {
		if err := c.opts.Apply(ctx, cfg); err != nil {
			return nil, fmt.Errorf("applying config: %w", err)
		}
	}
	c.publish(&Applied{Config: cfg, Resources: cand.dump(), Versions: maps.Clone(cand.versions), At: time.Now()})
	*last = cand
	c.m.applied.Inc()
	c.log.Info("config applied",
		zap.String("trigger_type", trigger), zap.Any("versions", cand.versions),
		zap.Int("listeners", len(cfg.Listeners)), zap.Int("routes", len(cfg.Routes)), zap.Int("clusters", len(cfg.Clusters)))
	return nil, nil
}

func (c *Client) publish(a *Applied) {
	if c.applied.Swap(a) == nil {
		c.m.ready.Set(1)
		c.log.Info("first complete config applied, ready")
		// Decoding the first config (all of it at once, thousands of
		// resources in a large mesh) leaves garbage several times the
		// config's size; give it back to the OS now rather than when the
		// scavenger gets to it (10,000 clusters: 75 → 60 MiB RSS).
		debug.FreeOSMemory()
	}
}

// sameResources reports whether a and b hold equal resources of every type.
func sameResources(a, b *store) bool {
	for _, t := range typeOrder {
		ra, rb := a.byType[t], b.byType[t]
		if len(ra) != len(rb) {
			return false
		}
		for name, x := range ra {
			y, ok := rb[name]
			if !ok || !sameRaw(t, x.raw, y.raw) {
				return false
			}
		}
	}
	return true
}

func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
