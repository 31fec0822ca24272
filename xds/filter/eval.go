package filter

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Match reports whether the instance satisfies the expression.
func (e *Expr) Match(inst *mesh.Instance) bool { return e.root.eval(inst) }

type valueKind int

const (
	kindString valueKind = iota
	kindInt
	kindList
	kindMap
)

type field int

const (
	fieldServiceID field = iota
	fieldServiceName
	fieldServiceAddress
	fieldServicePort
	fieldServiceTags
	fieldServiceMeta
	fieldNodeName
	fieldNodeDatacenter
	fieldNodeMeta
)

// selector is a resolved selector path.
type selector struct {
	path  string
	field field
	kind  valueKind
	key   string // Meta key for Service.Meta.<key> / Node.Meta.<key>
}

var selectors = map[string]selector{
	"Service.ID":      {field: fieldServiceID, kind: kindString},
	"Service.Service": {field: fieldServiceName, kind: kindString},
	"Service.Address": {field: fieldServiceAddress, kind: kindString},
	"Service.Port":    {field: fieldServicePort, kind: kindInt},
	"Service.Tags":    {field: fieldServiceTags, kind: kindList},
	"Service.Meta":    {field: fieldServiceMeta, kind: kindMap},
	"Node.Node":       {field: fieldNodeName, kind: kindString},
	"Node.Datacenter": {field: fieldNodeDatacenter, kind: kindString},
	"Node.Meta":       {field: fieldNodeMeta, kind: kindMap},
}

func resolveSelector(t token) (selector, error) {
	if s, ok := selectors[t.text]; ok {
		s.path = t.text
		return s, nil
	}
	for _, prefix := range []string{"Service.Meta.", "Node.Meta."} {
		if key, ok := strings.CutPrefix(t.text, prefix); ok && key != "" {
			s := selectors[strings.TrimSuffix(prefix, ".")]
			s.path, s.kind, s.key = t.text, kindString, key
			return s, nil
		}
	}
	return selector{}, fmt.Errorf("position %d: unknown selector %q (supported: Service.ID, Service.Service, Service.Address, "+
		"Service.Port, Service.Tags, Service.Meta[.<key>], Node.Node, Node.Datacenter, Node.Meta[.<key>])", t.pos, t.text)
}

// str returns a string or int selector's value as a string.
func (s selector) str(inst *mesh.Instance) string {
	switch s.field {
	case fieldServiceID:
		return inst.ID
	case fieldServiceName:
		return inst.Service
	case fieldServiceAddress:
		return inst.Address
	case fieldServicePort:
		return strconv.Itoa(inst.Port)
	case fieldNodeName:
		return inst.Node
	case fieldNodeDatacenter:
		return inst.Datacenter
	case fieldServiceMeta:
		return inst.Meta[s.key]
	case fieldNodeMeta:
		return inst.NodeMeta[s.key]
	}
	return ""
}

func (s selector) meta(inst *mesh.Instance) map[string]string {
	if s.field == fieldNodeMeta {
		return inst.NodeMeta
	}
	return inst.Meta
}

type node interface {
	eval(inst *mesh.Instance) bool
}

type always struct{}

func (always) eval(*mesh.Instance) bool { return true }

type orNode struct{ l, r node }

func (n orNode) eval(inst *mesh.Instance) bool { return n.l.eval(inst) || n.r.eval(inst) }

type andNode struct{ l, r node }

func (n andNode) eval(inst *mesh.Instance) bool { return n.l.eval(inst) && n.r.eval(inst) }

type notNode struct{ n node }

func (n notNode) eval(inst *mesh.Instance) bool { return !n.n.eval(inst) }

type equalNode struct {
	sel    selector
	value  string
	negate bool
}

func (n equalNode) eval(inst *mesh.Instance) bool {
	var eq bool
	if n.sel.kind == kindInt {
		v, _ := strconv.Atoi(n.value) // checked by the parser
		eq = inst.Port == v
	} else {
		eq = n.sel.str(inst) == n.value
	}
	return eq != n.negate
}

type emptyNode struct {
	sel    selector
	negate bool
}

func (n emptyNode) eval(inst *mesh.Instance) bool {
	var empty bool
	switch n.sel.kind {
	case kindList:
		empty = len(inst.Tags) == 0
	case kindMap:
		empty = len(n.sel.meta(inst)) == 0
	default:
		empty = n.sel.str(inst) == ""
	}
	return empty != n.negate
}

// containsNode is "value in selector" and "selector contains value".
type containsNode struct {
	sel    selector
	value  string
	negate bool
}

func (n containsNode) eval(inst *mesh.Instance) bool {
	var has bool
	switch n.sel.kind {
	case kindList:
		has = slices.Contains(inst.Tags, n.value)
	case kindMap:
		_, has = n.sel.meta(inst)[n.value]
	default:
		has = strings.Contains(n.sel.str(inst), n.value)
	}
	return has != n.negate
}

type matchesNode struct {
	sel    selector
	re     *regexp.Regexp
	negate bool
}

func (n matchesNode) eval(inst *mesh.Instance) bool {
	return n.re.MatchString(n.sel.str(inst)) != n.negate
}
