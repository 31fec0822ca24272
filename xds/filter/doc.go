// Package filter evaluates the Consul filter expressions that
// service-resolver subsets use (Subsets.<name>.Filter) against one service
// instance of the mesh model.
//
// It implements the part of Consul's go-bexpr grammar that users write for
// subsets:
//
//	expr      = or
//	or        = and { "or" and }
//	and       = unary { "and" unary }
//	unary     = "not" unary | "(" expr ")" | match
//	match     = selector ( "==" | "!=" ) value
//	          | selector "is" [ "not" ] "empty"
//	          | value [ "not" ] "in" selector
//	          | selector [ "not" ] ( "contains" | "matches" ) value
//	selector  = ident { "." ident }       e.g. Service.Meta.version
//	value     = "double quoted" | `back quoted` | bare word or number
//
// Selectors: Service.ID, Service.Service, Service.Address, Service.Port,
// Service.Tags, Service.Meta, Service.Meta.<key>, Node.Node,
// Node.Datacenter, Node.Meta, Node.Meta.<key>. A missing Meta key is the
// empty string (so "Service.Meta.x is empty" holds and "== v" does not).
// "in" and "contains" test membership for Tags, key presence for Meta and
// substrings for strings; "matches" is an RE2 regular expression over a
// string. Anything else is a parse error naming the position, so that a
// subset we cannot evaluate is refused instead of matching the wrong
// instances.
//
// Concurrency: a parsed *Expr is immutable and safe for concurrent use.
package filter
