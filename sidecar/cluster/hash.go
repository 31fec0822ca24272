package cluster

import "strconv"

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// HashString is the 64-bit hash used for ring and maglev keys and for
// request hash policies: FNV-1a followed by SplitMix64's finalizer so that
// similar keys spread over the whole ring.
func HashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

func hashSeeded(seed byte, s string) uint64 {
	h := uint64(fnvOffset)
	h ^= uint64(seed)
	h *= fnvPrime
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// CombineHash folds the next hash policy's value into the running hash the
// way Envoy's HashPolicyImpl does: rotate left by one, then xor.
func CombineHash(prev uint64, havePrev bool, next uint64) uint64 {
	if !havePrev {
		return next
	}
	return (prev<<1 | prev>>63) ^ next
}

func ringKey(addr string, i uint64) string {
	return addr + "_" + strconv.FormatUint(i, 10)
}
