package cluster

import (
	"math/rand/v2"
	"slices"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// overprovisioningFactor is Envoy's default (1.4, in percent units): a
// priority level with 1/1.4 ≈ 72% of its hosts available still takes all
// of its load.
const overprovisioningFactor = 140

// level is one priority level's share of the load and its picker.
type level struct {
	upTo   uint32 // cumulative load in percent: pick this level when r < upTo
	picker Picker
}

// priorityPicker chooses a priority level by load, then a host in it.
type priorityPicker struct{ levels []level }

func (p *priorityPicker) Pick(hash uint64, hasHash bool) *Host {
	return p.pickAttempt(hash, hasHash, 0)
}

func (p *priorityPicker) pickAttempt(hash uint64, hasHash bool, attempt uint32) *Host {
	// Hash balancers choose the level from the hash too, so a key sticks.
	var r uint32
	if hasHash {
		r = uint32(hash % 100)
	} else {
		r = rand.Uint32N(100)
	}
	for i := range p.levels {
		if r < p.levels[i].upTo {
			return pickAttempt(p.levels[i].picker, hash, hasHash, attempt)
		}
	}
	return nil
}

type prioStats struct {
	priority          uint32
	idx               []int // endpoint indexes
	healthy, degraded int
	load              uint32
	panic             bool
}

// buildPicker selects the hosts the load balancer may use and builds the
// picker, following Envoy's priority and panic semantics:
//   - a level's health is min(100, 1.4 × available/total) percent; the
//     normalized total health is the sum, capped at 100;
//   - load goes to the levels in priority order, each taking up to its
//     health × 100 / normalized total, rounding leftovers to the first
//     level with health;
//   - when the normalized total is below 100, a level whose available
//     share is below the panic threshold uses all its hosts; when every
//     level panics, the load is split by host count;
//   - within a level, healthy (and unknown) hosts are used, degraded ones
//     only when none is healthy;
//   - a host ejected by outlier detection counts as unavailable, so a
//     panicking level uses it again, as Envoy.
//
// It returns, per endpoint, whether the picker may choose it.
func buildPicker(cfg *config.Cluster, hosts []*Host) ([]bool, Picker) {
	picked := make([]bool, len(cfg.Endpoints))
	var levels []*prioStats
	byPrio := map[uint32]*prioStats{}
	for i, ep := range cfg.Endpoints {
		ps := byPrio[ep.Priority]
		if ps == nil {
			ps = &prioStats{priority: ep.Priority}
			byPrio[ep.Priority] = ps
			levels = append(levels, ps)
		}
		ps.idx = append(ps.idx, i)
		if hosts[i].od.Ejected() {
			continue // unavailable, as an unhealthy host (Envoy's FAILED_OUTLIER_CHECK)
		}
		switch ep.Health {
		case config.HealthUnknown, config.HealthHealthy:
			ps.healthy++
		case config.HealthDegraded:
			ps.degraded++
		}
	}
	if len(levels) == 0 {
		return picked, emptyPicker{}
	}
	slices.SortFunc(levels, func(a, b *prioStats) int { return int(int64(a.priority) - int64(b.priority)) })

	health := make([]uint32, len(levels))
	var normalized uint32
	for i, ps := range levels {
		health[i] = uint32(min(100, overprovisioningFactor*(ps.healthy+ps.degraded)/len(ps.idx)))
		normalized += health[i]
	}
	normalized = min(normalized, 100)
	threshold := cfg.HealthyPanicThreshold
	switch {
	case normalized == 0 && threshold == 0:
		levels[0].load = 100 // nothing available and no panic: UH
	case normalized == 0:
	default:
		remaining := uint32(100)
		first := -1
		for i, ps := range levels {
			if first < 0 && health[i] > 0 {
				first = i
			}
			ps.load = min(remaining, health[i]*100/normalized)
			remaining -= ps.load
		}
		levels[first].load += remaining
	}
	totalPanic := true
	if normalized < 100 {
		for _, ps := range levels {
			ps.panic = float64(ps.healthy+ps.degraded)*100 < threshold*float64(len(ps.idx))
			totalPanic = totalPanic && ps.panic
		}
	} else {
		totalPanic = false
	}
	if totalPanic {
		remaining := uint32(100)
		for _, ps := range levels {
			ps.load = uint32(100 * len(ps.idx) / len(cfg.Endpoints))
			remaining -= ps.load
		}
		levels[0].load += remaining
	}

	pp := &priorityPicker{}
	var upTo uint32
	for _, ps := range levels {
		if ps.load == 0 {
			continue
		}
		var ws []weighted
		for _, i := range ps.idx {
			ep := cfg.Endpoints[i]
			ok := false
			switch {
			case ps.panic:
				ok = true
			case hosts[i].od.Ejected():
			case ps.healthy > 0:
				ok = ep.Health == config.HealthUnknown || ep.Health == config.HealthHealthy
			default:
				ok = ep.Health == config.HealthDegraded
			}
			if ok {
				picked[i] = true
				ws = append(ws, weighted{host: hosts[i], weight: max(ep.Weight, 1)})
			}
		}
		upTo += ps.load
		pp.levels = append(pp.levels, level{upTo: upTo, picker: newPicker(cfg, ws)})
	}
	if len(pp.levels) == 1 {
		return picked, pp.levels[0].picker // the common case: no level choice
	}
	return picked, pp
}
