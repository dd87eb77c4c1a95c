package event

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Query is a compiled event filter in the bus's query language, in the
// spirit of Tendermint's: conditions on an event's fields and tags, joined
// by AND. Make one with ParseQuery (or give the text to MatchQuery). A Query
// is immutable and safe for concurrent use.
//
// Grammar:
//
//	query      = condition { "AND" condition }
//	condition  = key ( "EXISTS" | "CONTAINS" string | op operand )
//	op         = "=" | "<" | "<=" | ">" | ">="
//	operand    = string | number | "DATE" date | "TIME" time
//	key        = [A-Za-z_][A-Za-z0-9_.-]*    a field path (Conn, Member.Name) or a tag key
//	string     = '...'                       no quote inside
//	number     = -?[0-9]+(\.[0-9]+)?
//	date       = YYYY-MM-DD
//	time       = an RFC 3339 timestamp, such as 2024-05-03T14:45:00Z
//
// Keywords are upper case; "=" compares strings, numbers, dates and times,
// the order operators numbers, dates and times only. See MatchQuery for what
// a key names in an event and how each kind of value compares.
type Query struct {
	conds []condition
	text  string
}

// opKind is a condition's operator.
type opKind uint8

const (
	opEq opKind = iota + 1
	opLt
	opLe
	opGt
	opGe
	opContains
	opExists
)

var opText = [...]string{opEq: "=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=", opContains: "CONTAINS", opExists: "EXISTS"}

// operandKind is the kind of a condition's operand.
type operandKind uint8

const (
	operNone operandKind = iota // EXISTS
	operString
	operNumber
	operDate
	operTime
)

// condition is one "key op operand" of a query.
type condition struct {
	key    string
	keyDot string // key + ".": EXISTS on a tag also matches the keys under it
	op     opKind
	kind   operandKind
	str    string    // operString
	num    number    // operNumber
	tm     time.Time // operDate (midnight UTC) and operTime
	lit    string    // the operand as written (numbers), for String
}

// number is a numeric operand, kept exact when it is an integer.
type number struct {
	kind uint8 // numInt, numUint (above MaxInt64), numFloat
	i    int64
	u    uint64
	f    float64
}

const (
	numInt uint8 = iota
	numUint
	numFloat
)

// unordered is what the compare functions return when a NaN is involved:
// no operator holds.
const unordered = 2

func cmp3[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case a == b:
		return 0
	}
	return unordered
}

// cmpInt compares v with the operand.
func (n *number) cmpInt(v int64) int {
	switch n.kind {
	case numInt:
		return cmp3(v, n.i)
	case numUint:
		return -1 // the operand is above every int64
	}
	return cmp3(float64(v), n.f)
}

func (n *number) cmpUint(v uint64) int {
	switch n.kind {
	case numInt:
		if n.i < 0 {
			return 1
		}
		return cmp3(v, uint64(n.i))
	case numUint:
		return cmp3(v, n.u)
	}
	return cmp3(float64(v), n.f)
}

func (n *number) cmpFloat(v float64) int {
	switch n.kind {
	case numInt:
		return cmp3(v, float64(n.i))
	case numUint:
		return cmp3(v, float64(n.u))
	}
	return cmp3(v, n.f)
}

// holds reports whether op holds for a comparison result c (value against
// operand).
func holds(op opKind, c int) bool {
	switch op {
	case opEq:
		return c == 0
	case opLt:
		return c == -1
	case opLe:
		return c == -1 || c == 0
	case opGt:
		return c == 1
	case opGe:
		return c == 1 || c == 0
	}
	return false
}

const dateLayout = "2006-01-02"

// ParseQuery compiles a query (see Query for the grammar). It fails with an
// error wrapping ErrInvalid that says where the text went wrong. Parsing is
// linear in the length of s; a caller taking queries from the network
// bounds that length first.
func ParseQuery(s string) (*Query, error) {
	p := &parser{src: s}
	q, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("event: query %q: %w: %w", clip(s), err, ErrInvalid)
	}
	return q, nil
}

// MustParseQuery is ParseQuery for queries written in the program: it
// panics on an error.
func MustParseQuery(s string) *Query {
	q, err := ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return q
}

// String returns the query in a canonical form (one space around
// operators, upper-case keywords), which ParseQuery reads back to the same
// query. Two queries with the same String select the same events.
func (q *Query) String() string { return q.text }

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// parser reads a query; it is the scanner too.
type parser struct {
	src string
	pos int
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tKey
	tString
	tNumber
	tDate
	tTime
	tOp
	tAnd
	tContains
	tExists
)

type token struct {
	kind tokKind
	text string // key, string contents, number, date or time text, operator
	at   int
}

func (p *parser) errAt(at int, format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", at, fmt.Sprintf(format, args...))
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isKeyStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isKeyPart(c byte) bool { return isKeyStart(c) || isDigit(c) || c == '.' || c == '-' }

func (p *parser) next() (token, error) {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	at := p.pos
	if at == len(p.src) {
		return token{kind: tEOF, at: at}, nil
	}
	c := p.src[at]
	switch {
	case c == '\'':
		end := strings.IndexByte(p.src[at+1:], '\'')
		if end < 0 {
			return token{}, p.errAt(at, "unterminated string")
		}
		p.pos = at + 1 + end + 1
		return token{kind: tString, text: p.src[at+1 : at+1+end], at: at}, nil
	case c == '=':
		p.pos++
		return token{kind: tOp, text: "=", at: at}, nil
	case c == '<' || c == '>':
		p.pos++
		if p.pos < len(p.src) && p.src[p.pos] == '=' {
			p.pos++
		}
		return token{kind: tOp, text: p.src[at:p.pos], at: at}, nil
	case isDigit(c) || c == '-':
		return p.number(at)
	case isKeyStart(c):
		for p.pos < len(p.src) && isKeyPart(p.src[p.pos]) {
			p.pos++
		}
		word := p.src[at:p.pos]
		switch word {
		case "AND":
			return token{kind: tAnd, text: word, at: at}, nil
		case "CONTAINS":
			return token{kind: tContains, text: word, at: at}, nil
		case "EXISTS":
			return token{kind: tExists, text: word, at: at}, nil
		case "DATE", "TIME":
			return p.stamp(word, at)
		}
		return token{kind: tKey, text: word, at: at}, nil
	}
	return token{}, p.errAt(at, "unexpected %q", c)
}

// number scans -?[0-9]+(\.[0-9]+)?, which must not run into a letter.
func (p *parser) number(at int) (token, error) {
	i := at
	if p.src[i] == '-' {
		i++
	}
	start := i
	for i < len(p.src) && isDigit(p.src[i]) {
		i++
	}
	if i == start {
		return token{}, p.errAt(at, "a number needs digits")
	}
	if i < len(p.src) && p.src[i] == '.' {
		i++
		frac := i
		for i < len(p.src) && isDigit(p.src[i]) {
			i++
		}
		if i == frac {
			return token{}, p.errAt(at, "a number needs digits after its point")
		}
	}
	if i < len(p.src) && (isKeyPart(p.src[i]) || p.src[i] == '\'') {
		return token{}, p.errAt(at, "malformed number %q", p.src[at:min(len(p.src), i+1)])
	}
	p.pos = i
	return token{kind: tNumber, text: p.src[at:i], at: at}, nil
}

// stamp scans the literal after DATE or TIME: one space, then the stamp up
// to the next space or the end.
func (p *parser) stamp(word string, at int) (token, error) {
	if p.pos >= len(p.src) || p.src[p.pos] != ' ' {
		return token{}, p.errAt(at, "%s needs a space and then its value", word)
	}
	start := p.pos + 1
	end := start
	for end < len(p.src) && !isSpace(p.src[end]) {
		end++
	}
	p.pos = end
	lit := p.src[start:end]
	if word == "DATE" {
		if _, err := time.Parse(dateLayout, lit); err != nil {
			return token{}, p.errAt(start, "bad date %q: want YYYY-MM-DD", lit)
		}
		return token{kind: tDate, text: lit, at: at}, nil
	}
	if _, err := time.Parse(time.RFC3339, lit); err != nil {
		return token{}, p.errAt(start, "bad time %q: want RFC 3339, such as 2024-05-03T14:45:00Z", lit)
	}
	return token{kind: tTime, text: lit, at: at}, nil
}

func (p *parser) parse() (*Query, error) {
	q := &Query{}
	for {
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		q.conds = append(q.conds, c)
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind == tEOF {
			break
		}
		if t.kind != tAnd {
			return nil, p.errAt(t.at, "want AND or the end, got %q", t.text)
		}
	}
	parts := make([]string, len(q.conds))
	for i := range q.conds {
		parts[i] = q.conds[i].String()
	}
	q.text = strings.Join(parts, " AND ")
	return q, nil
}

func (p *parser) condition() (condition, error) {
	k, err := p.next()
	if err != nil {
		return condition{}, err
	}
	if k.kind != tKey {
		if k.kind == tEOF {
			return condition{}, p.errAt(k.at, "want a condition, got the end")
		}
		return condition{}, p.errAt(k.at, "want a key, got %q", k.text)
	}
	c := condition{key: k.text, keyDot: k.text + "."}
	op, err := p.next()
	if err != nil {
		return c, err
	}
	switch op.kind {
	case tExists:
		c.op = opExists
		return c, nil
	case tContains:
		c.op = opContains
		v, err := p.next()
		if err != nil {
			return c, err
		}
		if v.kind != tString {
			return c, p.errAt(v.at, "CONTAINS takes a quoted string")
		}
		c.kind, c.str = operString, v.text
		return c, nil
	case tOp:
		c.op = map[string]opKind{"=": opEq, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}[op.text]
	default:
		return c, p.errAt(op.at, "want an operator (=, <, <=, >, >=, CONTAINS, EXISTS) after %s", c.key)
	}
	v, err := p.next()
	if err != nil {
		return c, err
	}
	switch v.kind {
	case tString:
		if c.op != opEq {
			return c, p.errAt(v.at, "%s compares numbers, dates and times, not strings", opText[c.op])
		}
		c.kind, c.str = operString, v.text
	case tNumber:
		c.kind, c.lit = operNumber, v.text
		if c.num, err = parseNumber(v.text); err != nil {
			return c, p.errAt(v.at, "%v", err)
		}
	case tDate:
		c.kind, c.lit = operDate, v.text
		c.tm, _ = time.Parse(dateLayout, v.text)
	case tTime:
		c.kind, c.lit = operTime, v.text
		c.tm, _ = time.Parse(time.RFC3339, v.text)
	default:
		return c, p.errAt(v.at, "want a value after %s %s", c.key, opText[c.op])
	}
	return c, nil
}

// parseNumber reads a number exactly when it is an integer.
func parseNumber(s string) (number, error) {
	if !strings.Contains(s, ".") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return number{kind: numInt, i: i}, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return number{kind: numUint, u: u}, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return number{}, fmt.Errorf("number %s out of range", s)
	}
	return number{kind: numFloat, f: f}, nil
}

// String returns the condition in canonical form.
func (c *condition) String() string {
	switch c.op {
	case opExists:
		return c.key + " EXISTS"
	case opContains:
		return c.key + " CONTAINS '" + c.str + "'"
	}
	s := c.key + " " + opText[c.op] + " "
	switch c.kind {
	case operString:
		return s + "'" + c.str + "'"
	case operDate:
		return s + "DATE " + c.lit
	case operTime:
		return s + "TIME " + c.lit
	}
	return s + c.lit
}
