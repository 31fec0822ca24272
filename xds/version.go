package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// deterministic is the marshalling used for versions and for every Any this
// package builds: map entries in key order, so that equal content always
// gives equal bytes (within one protobuf runtime version).
var deterministic = proto.MarshalOptions{Deterministic: true}

// contentVersion hashes the deterministic encoding of items (already sorted
// by name). Each item is length-prefixed so that two different lists can
// never concatenate to the same bytes. Same content, same version; the
// version says nothing else (not a counter, not a time).
func contentVersion(items []types.Resource) (string, error) {
	h := sha256.New()
	var buf []byte
	var size [8]byte
	for _, item := range items {
		var err error
		buf, err = deterministic.MarshalAppend(buf[:0], item)
		if err != nil {
			return "", fmt.Errorf("version: marshal: %w", err)
		}
		binary.BigEndian.PutUint64(size[:], uint64(len(buf)))
		h.Write(size[:])
		h.Write(buf)
	}
	sum := h.Sum(nil)
	// 16 hex digits (64 bits) are plenty to tell versions of one type apart.
	return hex.EncodeToString(sum[:8]), nil
}

// toAny packs m deterministically (anypb.New does not promise a stable
// encoding, and the Any's bytes are part of the content we hash).
func toAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, deterministic); err != nil {
		return nil, fmt.Errorf("packing %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}
