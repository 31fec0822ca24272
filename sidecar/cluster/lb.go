package cluster

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Picker chooses one host. It is immutable and safe for concurrent use.
// hash is the request's hash policy result when hasHash is true (used only
// by ring hash and maglev).
type Picker interface {
	Pick(hash uint64, hasHash bool) *Host
}

// attemptPicker is a picker that varies its choice for the same hash on
// host-selection retries (Envoy's chooseHost(hash, attempt)).
type attemptPicker interface {
	pickAttempt(hash uint64, hasHash bool, attempt uint32) *Host
}

// pickAttempt is the attempt-th selection (0 is Pick).
func pickAttempt(p Picker, hash uint64, hasHash bool, attempt uint32) *Host {
	if ap, ok := p.(attemptPicker); ok && attempt > 0 {
		return ap.pickAttempt(hash, hasHash, attempt)
	}
	return p.Pick(hash, hasHash)
}

// PickExcluding picks a host avoiding those in exclude (the previous_hosts
// retry predicate): it re-picks up to attempts more times
// (host_selection_retry_max_attempts) and then accepts the last pick, as
// Envoy. Hash balancers walk to the next ring entry (ring hash) or rehash
// (maglev) on each re-pick. nil when no host is available.
func (c *Cluster) PickExcluding(hash uint64, hasHash bool, exclude []*Host, attempts int) *Host {
	p := c.lb.Load().picker
	h := p.Pick(hash, hasHash)
	for i := 1; i <= attempts && h != nil && contains(exclude, h); i++ {
		h = pickAttempt(p, hash, hasHash, uint32(i))
	}
	return h
}

func contains(hs []*Host, h *Host) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

type weighted struct {
	host   *Host
	weight uint32
}

func newPicker(cfg *config.Cluster, hosts []weighted) Picker {
	if len(hosts) == 0 {
		return emptyPicker{}
	}
	switch cfg.LBPolicy {
	case config.LeastRequest:
		return newLeastRequest(hosts, cfg.LeastRequestChoiceCount)
	case config.Random:
		return &randomPicker{hosts: hosts}
	case config.RingHash:
		return newRingHash(hosts, cfg.RingHashMinSize, cfg.RingHashMaxSize)
	case config.Maglev:
		return newMaglev(hosts, cfg.MaglevTableSize)
	default:
		return newRoundRobin(hosts)
	}
}

type emptyPicker struct{}

func (emptyPicker) Pick(uint64, bool) *Host { return nil }

// roundRobin walks a precomputed smooth weighted schedule.
type roundRobin struct {
	schedule []*Host
	next     atomic.Uint64
}

// maxSchedule bounds the schedule; larger weight sums are scaled down.
const maxSchedule = 1 << 14

func newRoundRobin(hosts []weighted) *roundRobin {
	ws := make([]int64, len(hosts))
	var sum int64
	g := uint32(0)
	for _, h := range hosts {
		g = gcd(g, h.weight)
	}
	for i, h := range hosts {
		ws[i] = int64(h.weight / g)
		sum += ws[i]
	}
	if sum > maxSchedule {
		scale := float64(maxSchedule) / float64(sum)
		sum = 0
		for i := range ws {
			ws[i] = max(1, int64(math.Round(float64(ws[i])*scale)))
			sum += ws[i]
		}
	}
	rr := &roundRobin{schedule: make([]*Host, 0, sum)}
	switch {
	case sum == int64(len(hosts)):
		// Equal weights: plain rotation.
		for _, h := range hosts {
			rr.schedule = append(rr.schedule, h.host)
		}
	case len(hosts) > 64:
		// Many hosts: the nginx loop below is O(sum × hosts); use an
		// earliest-deadline-first schedule (what Envoy uses), O(sum log n).
		rr.schedule = edfSchedule(hosts, ws, sum)
	default:
		rr.schedule = smoothSchedule(hosts, ws, sum)
	}
	// Start somewhere random so that sidecars do not move in lockstep
	// (Envoy does the same).
	rr.next.Store(rand.Uint64N(uint64(len(rr.schedule))))
	return rr
}

// smoothSchedule is nginx's smooth weighted round robin: each step every
// host gains its weight, the richest is picked and pays the total.
func smoothSchedule(hosts []weighted, ws []int64, sum int64) []*Host {
	cur := make([]int64, len(hosts))
	out := make([]*Host, 0, sum)
	for range sum {
		best := 0
		for i := range cur {
			cur[i] += ws[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, hosts[best].host)
	}
	return out
}

// edfSchedule picks, sum times, the host whose next deadline (picks+1) /
// weight is earliest; ties go to the lower index.
func edfSchedule(hosts []weighted, ws []int64, sum int64) []*Host {
	h := &edfHeap{}
	for i := range hosts {
		h.items = append(h.items, edfItem{deadline: 1 / float64(ws[i]), idx: i})
	}
	heap.Init(h)
	out := make([]*Host, 0, sum)
	for range sum {
		it := &h.items[0]
		out = append(out, hosts[it.idx].host)
		it.deadline += 1 / float64(ws[it.idx])
		heap.Fix(h, 0)
	}
	return out
}

type edfItem struct {
	deadline float64
	idx      int
}

type edfHeap struct{ items []edfItem }

func (h *edfHeap) Len() int { return len(h.items) }
func (h *edfHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	return a.deadline < b.deadline || a.deadline == b.deadline && a.idx < b.idx
}
func (h *edfHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *edfHeap) Push(x any)    { h.items = append(h.items, x.(edfItem)) }
func (h *edfHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}

func gcd(a, b uint32) uint32 {
	b = max(b, 1)
	for a != 0 {
		a, b = b%a, a
	}
	return b
}

func (p *roundRobin) Pick(uint64, bool) *Host {
	n := p.next.Add(1)
	return p.schedule[n%uint64(len(p.schedule))]
}

type randomPicker struct{ hosts []weighted }

func (p *randomPicker) Pick(uint64, bool) *Host {
	return p.hosts[rand.IntN(len(p.hosts))].host
}

type leastRequest struct {
	hosts    []weighted
	choices  int
	weighted bool
}

func newLeastRequest(hosts []weighted, choices uint32) *leastRequest {
	lr := &leastRequest{hosts: hosts, choices: int(max(choices, 2))}
	for _, h := range hosts[1:] {
		if h.weight != hosts[0].weight {
			lr.weighted = true
		}
	}
	return lr
}

func (p *leastRequest) Pick(uint64, bool) *Host {
	if len(p.hosts) == 1 {
		return p.hosts[0].host
	}
	if p.weighted {
		return p.pickWeighted()
	}
	var best *Host
	var bestActive int64
	for range p.choices {
		h := p.hosts[rand.IntN(len(p.hosts))].host
		if a := h.active.Load(); best == nil || a < bestActive {
			best, bestActive = h, a
		}
	}
	return best
}

// pickWeighted draws proportionally to weight / (active + 1), Envoy's
// effective weight with the default active_request_bias of 1.
func (p *leastRequest) pickWeighted() *Host {
	var total float64
	var eff [16]float64
	effs := eff[:0]
	if len(p.hosts) > len(eff) {
		effs = make([]float64, 0, len(p.hosts))
	}
	for _, h := range p.hosts {
		e := float64(h.weight) / float64(h.host.active.Load()+1)
		effs = append(effs, e)
		total += e
	}
	x := rand.Float64() * total
	for i, e := range effs {
		if x < e {
			return p.hosts[i].host
		}
		x -= e
	}
	return p.hosts[len(p.hosts)-1].host
}

type ringEntry struct {
	hash uint64
	host *Host
}

type ringHash struct {
	ring  []ringEntry
	hosts []weighted
}

func newRingHash(hosts []weighted, minSize, maxSize uint64) *ringHash {
	if minSize == 0 {
		minSize = 1024
	}
	if maxSize == 0 {
		maxSize = 8 << 20
	}
	minSize = min(minSize, maxSize)
	var sum float64
	for _, h := range hosts {
		sum += float64(h.weight)
	}
	minNorm := 1.0
	for _, h := range hosts {
		minNorm = min(minNorm, float64(h.weight)/sum)
	}
	// Envoy: scale so that the least weighted host gets a whole number of
	// entries, within the max ring size.
	scale := min(math.Ceil(minNorm*float64(minSize))/minNorm, float64(maxSize))
	rh := &ringHash{hosts: hosts, ring: make([]ringEntry, 0, int(scale)+len(hosts))}
	var current, target float64
	for _, h := range hosts {
		target += scale * float64(h.weight) / sum
		for i := uint64(0); current < target; i++ {
			rh.ring = append(rh.ring, ringEntry{hash: HashString(ringKey(h.host.Address, i)), host: h.host})
			current++
		}
	}
	slices.SortFunc(rh.ring, func(a, b ringEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return rh
}

func (p *ringHash) Pick(hash uint64, hasHash bool) *Host { return p.pickAttempt(hash, hasHash, 0) }

// pickAttempt walks attempt entries further along the ring, as Envoy's
// ring hash does on host-selection retries.
func (p *ringHash) pickAttempt(hash uint64, hasHash bool, attempt uint32) *Host {
	if !hasHash {
		return p.hosts[rand.IntN(len(p.hosts))].host
	}
	// First entry with ring hash >= hash (wrapping), as Envoy's ring.
	lo, hi := 0, len(p.ring)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.ring[mid].hash < hash {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return p.ring[(lo+int(attempt))%len(p.ring)].host
}

type maglev struct {
	table []*Host
	hosts []weighted
}

func newMaglev(hosts []weighted, size uint64) *maglev {
	if size == 0 {
		size = 65537
	}
	type build struct {
		offset, skip, next uint64
		target             uint64
		weight             uint64
	}
	var maxW uint64
	bs := make([]build, len(hosts))
	for i, h := range hosts {
		bs[i] = build{
			offset: hashSeeded(0, h.host.Address) % size,
			skip:   hashSeeded(1, h.host.Address)%(size-1) + 1,
			weight: uint64(h.weight),
		}
		maxW = max(maxW, uint64(h.weight))
	}
	m := &maglev{table: make([]*Host, size), hosts: hosts}
	filled := uint64(0)
	// Envoy's weighted fill: a host takes a turn in an iteration only when
	// its share of turns so far is below its weight.
	for iter := uint64(0); filled < size; iter++ {
		for i := range bs {
			if filled == size {
				break
			}
			b := &bs[i]
			if iter*b.weight < b.target {
				continue
			}
			b.target += maxW
			c := (b.offset + b.skip*b.next) % size
			for m.table[c] != nil {
				b.next++
				c = (b.offset + b.skip*b.next) % size
			}
			m.table[c] = hosts[i].host
			b.next++
			filled++
		}
	}
	return m
}

// pickAttempt rehashes with the attempt number on host-selection retries.
func (p *maglev) pickAttempt(hash uint64, hasHash bool, attempt uint32) *Host {
	return p.Pick(mix(hash+uint64(attempt)), hasHash)
}

func (p *maglev) Pick(hash uint64, hasHash bool) *Host {
	if !hasHash {
		return p.hosts[rand.IntN(len(p.hosts))].host
	}
	return p.table[hash%uint64(len(p.table))]
}
