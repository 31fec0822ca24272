package discovery

import (
	"iter"
	"slices"
)

// nameIndex maps a key to the set of names holding it. Nearly every key
// has exactly one name, so that one is stored inline and only further
// names take a slice (no allocation per key in the common case).
type nameIndex struct {
	first map[string]string
	more  map[string][]string
}

func newNameIndex() nameIndex {
	return nameIndex{first: map[string]string{}, more: map[string][]string{}}
}

func (x nameIndex) add(key, name string) {
	cur, ok := x.first[key]
	switch {
	case !ok:
		x.first[key] = name
	case cur != name && !slices.Contains(x.more[key], name):
		x.more[key] = append(x.more[key], name)
	}
}

func (x nameIndex) remove(key, name string) {
	more := x.more[key]
	if x.first[key] == name {
		if len(more) == 0 {
			delete(x.first, key)
			return
		}
		x.first[key], more = more[0], more[1:]
	} else {
		more = slices.DeleteFunc(slices.Clone(more), func(n string) bool { return n == name })
	}
	if len(more) == 0 {
		delete(x.more, key)
	} else {
		x.more[key] = more
	}
}

// names yields every name holding key.
func (x nameIndex) names(key string) iter.Seq[string] {
	return func(yield func(string) bool) {
		first, ok := x.first[key]
		if !ok || !yield(first) || len(x.more) == 0 {
			return
		}
		for _, n := range x.more[key] {
			if !yield(n) {
				return
			}
		}
	}
}
