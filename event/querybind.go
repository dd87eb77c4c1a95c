package event

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// A query is compiled once per subscription and event type into a
// boundQuery: each key is resolved to a field (its offset and kind) or to
// the event's tags, and conditions that cannot apply are refused then, not
// at every Emit. Evaluation reads fields in place through the offsets, so a
// query on fields or exact tags allocates nothing.

// fieldKind is how a bound field is read.
type fieldKind uint8

const (
	fString fieldKind = iota + 1
	fBool
	fInt8
	fInt16
	fInt32
	fInt64
	fUint8
	fUint16
	fUint32
	fUint64
	fFloat32
	fFloat64
	fTime
	fError
)

// sources of a bound condition.
const (
	srcField uint8 = iota + 1
	srcTag
)

type boundCond struct {
	*condition
	src uint8
	off uintptr
	fk  fieldKind
}

// boundQuery is a Query bound to one event type.
type boundQuery struct {
	conds []boundCond
	tags  bool // a condition reads the tags
	never bool // a key names nothing in this type: no event matches
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	errorType = reflect.TypeFor[error]()
)

// bind compiles q for events of type rt (tagged: they carry tags). absent
// lists the keys that name neither a field of rt nor, for lack of tags,
// anything; the bound query then matches nothing. err reports a condition
// that can never be evaluated on rt: a field of a kind a query cannot read,
// or an operator that does not fit the field.
func (q *Query) bind(rt reflect.Type, tagged bool) (bq *boundQuery, absent []string, err error) {
	bq = &boundQuery{conds: make([]boundCond, len(q.conds))}
	for i := range q.conds {
		c := &q.conds[i]
		bc := boundCond{condition: c}
		off, ft, found := fieldPath(rt, c.key)
		switch {
		case found:
			kind, err := kindOf(ft)
			if err != nil {
				return nil, nil, fmt.Errorf("event: query %q on %v: field %s: %w", q.text, rt, c.key, err)
			}
			if err := fits(c, kind); err != nil {
				return nil, nil, fmt.Errorf("event: query %q on %v: field %s (%v): %w", q.text, rt, c.key, ft, err)
			}
			bc.src, bc.off, bc.fk = srcField, off, kind
		case tagged:
			bc.src = srcTag
			bq.tags = true
		default:
			absent = append(absent, c.key)
			bq.never = true
		}
		bq.conds[i] = bc
	}
	return bq, absent, nil
}

// fieldPath resolves a dotted path of exported fields (promoted fields
// included) through nested structs, not through pointers.
func fieldPath(rt reflect.Type, path string) (off uintptr, ft reflect.Type, ok bool) {
	cur := rt
	for part := range strings.SplitSeq(path, ".") {
		if cur.Kind() != reflect.Struct {
			return 0, nil, false
		}
		sf, found := cur.FieldByName(part)
		if !found || !sf.IsExported() {
			return 0, nil, false
		}
		for _, idx := range sf.Index {
			if cur.Kind() != reflect.Struct {
				return 0, nil, false // promoted through an embedded pointer
			}
			f := cur.Field(idx)
			off += f.Offset
			cur = f.Type
		}
	}
	return off, cur, true
}

func kindOf(ft reflect.Type) (fieldKind, error) {
	switch {
	case ft == timeType:
		return fTime, nil
	case ft == errorType:
		return fError, nil
	}
	switch ft.Kind() {
	case reflect.String:
		return fString, nil
	case reflect.Bool:
		return fBool, nil
	case reflect.Int8:
		return fInt8, nil
	case reflect.Int16:
		return fInt16, nil
	case reflect.Int32:
		return fInt32, nil
	case reflect.Int64:
		return fInt64, nil
	case reflect.Int:
		return map[uintptr]fieldKind{4: fInt32, 8: fInt64}[ft.Size()], nil
	case reflect.Uint8:
		return fUint8, nil
	case reflect.Uint16:
		return fUint16, nil
	case reflect.Uint32:
		return fUint32, nil
	case reflect.Uint64:
		return fUint64, nil
	case reflect.Uint, reflect.Uintptr:
		return map[uintptr]fieldKind{4: fUint32, 8: fUint64}[ft.Size()], nil
	case reflect.Float32:
		return fFloat32, nil
	case reflect.Float64:
		return fFloat64, nil
	}
	return 0, fmt.Errorf("a query compares strings, numbers, booleans, times and errors, not %v (filter it with Where)", ft)
}

// fits checks that c's operator and operand suit a field of kind k.
func fits(c *condition, k fieldKind) error {
	if c.op == opExists {
		return nil
	}
	switch k {
	case fString, fError:
		if c.kind != operString {
			return fmt.Errorf("%s takes a quoted string", opText[c.op])
		}
	case fBool:
		if c.op != opEq || c.kind != operString || (c.str != "true" && c.str != "false") {
			return fmt.Errorf("a boolean compares with = 'true' or = 'false'")
		}
	case fTime:
		if c.kind != operDate && c.kind != operTime {
			return fmt.Errorf("a time compares with DATE or TIME values")
		}
	default: // numbers
		if c.kind != operNumber {
			return fmt.Errorf("a number compares with numbers")
		}
	}
	return nil
}

// match evaluates the query on the event at p, which carries tags (read
// only when bq.tags). p must point to a value of the type bq was bound to.
// Nothing here retains p, so the caller's event does not escape.
func (bq *boundQuery) match(p unsafe.Pointer, tags []string) bool {
	if bq.never {
		return false
	}
	for i := range bq.conds {
		c := &bq.conds[i]
		var ok bool
		if c.src == srcTag {
			ok = c.matchTags(tags)
		} else {
			ok = c.matchField(unsafe.Add(p, c.off))
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *boundCond) matchField(p unsafe.Pointer) bool {
	switch c.fk {
	case fString:
		return c.matchString(*(*string)(p))
	case fError:
		e := *(*error)(p)
		if e == nil {
			return false
		}
		return c.op == opExists || c.matchString(e.Error())
	case fBool:
		v := *(*bool)(p)
		if c.op == opExists {
			return v
		}
		return v == (c.str == "true")
	case fTime:
		v := *(*time.Time)(p)
		if c.op == opExists {
			return !v.IsZero()
		}
		return holds(c.op, c.cmpTime(v))
	case fInt8:
		return c.matchInt(int64(*(*int8)(p)))
	case fInt16:
		return c.matchInt(int64(*(*int16)(p)))
	case fInt32:
		return c.matchInt(int64(*(*int32)(p)))
	case fInt64:
		return c.matchInt(*(*int64)(p))
	case fUint8:
		return c.matchUint(uint64(*(*uint8)(p)))
	case fUint16:
		return c.matchUint(uint64(*(*uint16)(p)))
	case fUint32:
		return c.matchUint(uint64(*(*uint32)(p)))
	case fUint64:
		return c.matchUint(*(*uint64)(p))
	case fFloat32:
		return c.matchFloat(float64(*(*float32)(p)))
	case fFloat64:
		return c.matchFloat(*(*float64)(p))
	}
	return false
}

func (c *boundCond) matchString(s string) bool {
	switch c.op {
	case opExists:
		return s != ""
	case opContains:
		return strings.Contains(s, c.str)
	}
	return s == c.str
}

func (c *boundCond) matchInt(v int64) bool {
	if c.op == opExists {
		return v != 0
	}
	return holds(c.op, c.num.cmpInt(v))
}

func (c *boundCond) matchUint(v uint64) bool {
	if c.op == opExists {
		return v != 0
	}
	return holds(c.op, c.num.cmpUint(v))
}

func (c *boundCond) matchFloat(v float64) bool {
	if c.op == opExists {
		return v != 0
	}
	return holds(c.op, c.num.cmpFloat(v))
}

// cmpTime compares v with a TIME operand as instants, with a DATE operand
// as calendar days in UTC.
func (c *boundCond) cmpTime(v time.Time) int {
	if c.kind == operDate {
		y, m, d := v.UTC().Date()
		v = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	return v.Compare(c.tm)
}

// matchTags evaluates the condition on tags: "key=value" tags carry the key
// with that value, a tag without "=" carries its whole text as a key with
// the empty value. A key may appear in several tags; the condition holds if
// it holds for one of them. EXISTS also matches keys under key (key.sub).
func (c *boundCond) matchTags(tags []string) bool {
	for _, tag := range tags {
		k, v, _ := strings.Cut(tag, "=")
		if c.op == opExists {
			if k == c.key || strings.HasPrefix(k, c.keyDot) {
				return true
			}
			continue
		}
		if k == c.key && c.matchTagValue(v) {
			return true
		}
	}
	return false
}

// matchTagValue compares one tag value; a value that does not read as the
// operand's kind does not match.
func (c *boundCond) matchTagValue(v string) bool {
	switch c.kind {
	case operString:
		return c.matchString(v)
	case operNumber:
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return holds(c.op, c.num.cmpInt(i))
		}
		if u, err := strconv.ParseUint(v, 10, 64); err == nil {
			return holds(c.op, c.num.cmpUint(u))
		}
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && holds(c.op, c.num.cmpFloat(f))
	case operDate, operTime:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse(dateLayout, v); err != nil {
				return false
			}
		}
		return holds(c.op, c.cmpTime(t))
	}
	return false
}
