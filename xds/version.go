package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// deterministic is the marshalling used for versions and for every Any this
// package builds: map entries in key order, so that equal content always
// gives equal bytes (within one protobuf runtime version).
func deterministic() proto.MarshalOptions { return proto.MarshalOptions{Deterministic: true} }

// versionLen is how many hex digits a version keeps: 64 bits are plenty to
// tell the versions of one resource or one type apart.
const versionLen = 16

// contentVersions hashes the deterministic encoding of every item (sorted
// by name, names unique) into a per-resource version, and the names and
// per-resource versions into the type's version. Same content, same
// version; the version says nothing else (not a counter, not a time).
//
// The per-resource versions are what delta xDS compares; computing them
// here, where every resource is marshalled anyway, spares go-control-plane
// a second marshal of every resource (Snapshot.ConstructVersionMap).
func contentVersions(names []string, items []types.Resource) (string, []string, error) {
	itemVersions := make([]string, len(items))
	var buf []byte
	for i, item := range items {
		var err error
		if itemVersions[i], buf, err = itemVersion(item, buf); err != nil {
			return "", nil, fmt.Errorf("version of %q: %w", names[i], err)
		}
	}
	return typeVersion(names, itemVersions), itemVersions, nil
}

// itemVersion is one resource's content version: a hash of its
// deterministic encoding. buf is scratch space, returned for reuse.
func itemVersion(item types.Resource, buf []byte) (string, []byte, error) {
	buf, err := deterministic().MarshalAppend(buf[:0], item)
	if err != nil {
		return "", buf, fmt.Errorf("marshal: %w", err)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:versionLen/2]), buf, nil
}

// typeVersion is a type's version from its resources' names (sorted,
// unique) and content versions.
func typeVersion(names, itemVersions []string) string {
	typeHash := sha256.New()
	for i := range names {
		// Names cannot contain NUL in practice, and the version has a fixed
		// length, so name NUL version is an unambiguous record.
		typeHash.Write([]byte(names[i]))
		typeHash.Write([]byte{0})
		typeHash.Write([]byte(itemVersions[i]))
	}
	sum := typeHash.Sum(nil)
	return hex.EncodeToString(sum[:versionLen/2])
}

// toAny packs m deterministically (anypb.New does not promise a stable
// encoding, and the Any's bytes are part of the content we hash).
func toAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, deterministic()); err != nil {
		return nil, fmt.Errorf("packing %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}
