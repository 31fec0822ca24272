package xds

import (
	"errors"
	"fmt"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// EntryError is a config entry that Consul accepted and that we cannot
// apply: a weight sum off, a subset that does not exist, a filter we
// cannot evaluate, an unknown extension key, a regex RE2 cannot compile.
// The translation that needed the entry fails with it (wrapped), so that
// nothing is pushed half-applied and the caller keeps the proxy's last
// good resources; find it with errors.As (or EntryErrors) to list it.
type EntryError struct {
	Entry mesh.EntryRef
	Field string
	Err   error
}

func (e *EntryError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %v", e.Entry, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Entry, e.Field, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// EntryErrors returns the EntryError an error wraps, or nil.
func EntryErrors(err error) *EntryError {
	var ee *EntryError
	if errors.As(err, &ee) {
		return ee
	}
	return nil
}

func entryErr(kind mesh.EntryKind, name, field string, format string, args ...any) *EntryError {
	return &EntryError{Entry: mesh.EntryRef{Kind: kind, Name: name}, Field: field, Err: fmt.Errorf(format, args...)}
}
