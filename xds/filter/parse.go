package filter

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Expr is a parsed filter expression.
type Expr struct {
	root node
	src  string
}

// String returns the expression as written.
func (e *Expr) String() string { return e.src }

// Parse parses a filter expression. The empty expression matches every
// instance (Consul: a subset without a filter is the whole service).
func Parse(s string) (*Expr, error) {
	if strings.TrimSpace(s) == "" {
		return &Expr{root: always{}, src: s}, nil
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("position %d: unexpected %q after a complete expression", t.pos, t.text)
	}
	return &Expr{root: n, src: s}, nil
}

// maxDepth bounds nesting so that a hostile expression cannot exhaust the
// stack.
const maxDepth = 100

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// keyword reports whether the next token is the bare word kw.
func (p *parser) keyword(kw string) bool {
	t := p.peek()
	return t.kind == tokWord && t.text == kw
}

func (p *parser) or() (node, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		p.next()
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		left = orNode{left, right}
	}
	return left, nil
}

func (p *parser) and() (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = andNode{left, right}
	}
	return left, nil
}

func (p *parser) unary() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, fmt.Errorf("position %d: expression nested deeper than %d", p.peek().pos, maxDepth)
	}
	if p.keyword("not") {
		p.next()
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	if p.peek().kind == tokLParen {
		p.next()
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != tokRParen {
			return nil, fmt.Errorf("position %d: want ')', got %s", t.pos, describe(t))
		}
		return n, nil
	}
	return p.match()
}

func describe(t token) string {
	if t.kind == tokEOF {
		return "end of expression"
	}
	return strconv.Quote(t.text)
}

// match parses one comparison. Its first token is either a selector
// (selector op value) or a value ("value in selector").
func (p *parser) match() (node, error) {
	first := p.next()
	if first.kind != tokWord && first.kind != tokString {
		return nil, fmt.Errorf("position %d: want a selector or a value, got %s", first.pos, describe(first))
	}
	// value [not] in selector
	if p.keyword("in") || (p.keyword("not") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tokWord && p.toks[p.i+1].text == "in") {
		negate := p.keyword("not")
		if negate {
			p.next()
		}
		p.next() // in
		sel, err := p.selector()
		if err != nil {
			return nil, err
		}
		if sel.kind == kindInt {
			return nil, fmt.Errorf("position %d: %q cannot be used with in", first.pos, sel.path)
		}
		return containsNode{sel: sel, value: first.text, negate: negate}, nil
	}
	if first.kind != tokWord {
		return nil, fmt.Errorf("position %d: want a selector, got the value %q", first.pos, first.text)
	}
	sel, err := resolveSelector(first)
	if err != nil {
		return nil, err
	}
	op := p.next()
	switch {
	case op.kind == tokEq || op.kind == tokNe:
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if sel.kind == kindList || sel.kind == kindMap {
			return nil, fmt.Errorf("position %d: %s cannot be compared with %s (use in, contains or is empty)", op.pos, sel.path, op.text)
		}
		if sel.kind == kindInt {
			if _, err := strconv.Atoi(v.text); err != nil {
				return nil, fmt.Errorf("position %d: %s is a number, %q is not", v.pos, sel.path, v.text)
			}
		}
		return equalNode{sel: sel, value: v.text, negate: op.kind == tokNe}, nil
	case op.kind == tokWord && op.text == "is":
		negate := false
		if p.keyword("not") {
			p.next()
			negate = true
		}
		if t := p.next(); t.kind != tokWord || t.text != "empty" {
			return nil, fmt.Errorf("position %d: want \"empty\" after \"is\", got %s", t.pos, describe(t))
		}
		if sel.kind == kindInt {
			return nil, fmt.Errorf("position %d: %s is a number and cannot be empty", op.pos, sel.path)
		}
		return emptyNode{sel: sel, negate: negate}, nil
	case op.kind == tokWord && (op.text == "not" || op.text == "contains" || op.text == "matches"):
		negate := op.text == "not"
		if negate {
			op = p.next()
			if op.kind != tokWord || (op.text != "contains" && op.text != "matches") {
				return nil, fmt.Errorf("position %d: want contains or matches after not, got %s", op.pos, describe(op))
			}
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if op.text == "contains" {
			if sel.kind == kindInt {
				return nil, fmt.Errorf("position %d: %s is a number and cannot contain", op.pos, sel.path)
			}
			return containsNode{sel: sel, value: v.text, negate: negate}, nil
		}
		if sel.kind != kindString {
			return nil, fmt.Errorf("position %d: matches needs a string selector, %s is not one", op.pos, sel.path)
		}
		re, err := regexp.Compile(v.text)
		if err != nil {
			return nil, fmt.Errorf("position %d: %w", v.pos, err)
		}
		return matchesNode{sel: sel, re: re, negate: negate}, nil
	}
	return nil, fmt.Errorf("position %d: want ==, !=, is, contains, matches or in after %s, got %s", op.pos, sel.path, describe(op))
}

func (p *parser) value() (token, error) {
	t := p.next()
	if t.kind != tokWord && t.kind != tokString {
		return t, fmt.Errorf("position %d: want a value, got %s", t.pos, describe(t))
	}
	return t, nil
}

func (p *parser) selector() (selector, error) {
	t := p.next()
	if t.kind != tokWord {
		return selector{}, fmt.Errorf("position %d: want a selector, got %s", t.pos, describe(t))
	}
	return resolveSelector(t)
}
