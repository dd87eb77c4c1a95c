package event

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tx is an event with a field of every kind a query reads, and tags.
type Tx struct {
	Height int64
	Owner  string
	Amount float64
	Fee    uint32
	Big    uint64
	Small  int8
	Ok     bool
	At     time.Time
	Err    error
	Meta   TxMeta
	Tags   []string
}

type TxMeta struct{ Region string }

func (x Tx) EventTags() []string { return x.Tags }

// tagsOf builds tags from Tendermint-style attributes.
func tagsOf(attrs map[string][]string) []string {
	var tags []string
	for k, vs := range attrs {
		for _, v := range vs {
			tags = append(tags, k+"="+v)
		}
	}
	return tags
}

// matches reports whether a subscription with query q receives ev.
func matches[T any](t *testing.T, q string, ev T) bool {
	t.Helper()
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[T](b))(t)
	s, err := Subscribe[T](b, MatchQuery(q))
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	_ = em.Emit(ev)
	return len(s.Out()) == 1
}

// Modelled on Tendermint's query syntax tests (TestParseValid): what the
// grammar accepts and refuses, and that accepted queries round-trip
// through String.
func TestParseQuery(t *testing.T) {
	tests := []struct {
		in    string
		valid bool
	}{
		{"tm.events.type='NewBlock'", true},
		{"tm.events.type = 'NewBlock'", true},
		{"tm.events.name = ''", true},
		{"tm.events.type='TIME'", true},
		{"tm.events.type='DATE'", true},
		{"tm.events.type='='", true},
		{"tm.events.type='TIME", false},
		{"tm.events.type=TIME'", false},
		{"tm.events.type==", false},
		{"tm.events.type=NewBlock", false},
		{">==", false},
		{"tm.events.type 'NewBlock' =", false},
		{"tm.events.type>'NewBlock'", false},
		{"", false},
		{"   ", false},
		{"=", false},
		{"='NewBlock'", false},
		{"tm.events.type=", false},
		{"tm.events.typeNewBlock", false},
		{"tm.events.type'NewBlock'", false},
		{"'NewBlock'", false},
		{"NewBlock", false},
		{"tm.events.type='NewBlock' AND abci.account.name='Igor'", true},
		{"tm.events.type='NewBlock' AND", false},
		{"tm.events.type='NewBlock' AN", false},
		{"tm.events.type='NewBlock' AN tm.events.type='NewBlockHeader'", false},
		{"AND tm.events.type='NewBlock' ", false},
		{"abci.account.name CONTAINS 'Igor'", true},
		{"abci.account.name CONTAINS Igor", false},
		{"abci.account.name CONTAINS 5", false},
		{"tx.date > DATE 2013-05-03", true},
		{"tx.date < DATE 2013-05-03", true},
		{"tx.date <= DATE 2013-05-03", true},
		{"tx.date >= DATE 2013-05-03", true},
		{"tx.date >= DAT 2013-05-03", false},
		{"tx.date <= DATE2013-05-03", false},
		{"tx.date <= DATE -05-03", false},
		{"tx.date >= DATE 20130503", false},
		{"tx.date >= DATE 2013+01-03", false},
		{"tx.date >= DATE 2013-31-03", false},
		{"tx.date >= DATE 2013-01-83", false},
		{"tx.date > TIME 2013-05-03T14:45:00+07:00", true},
		{"tx.date < TIME 2013-05-03T14:45:00-02:00", true},
		{"tx.date <= TIME 2013-05-03T14:45:00Z", true},
		{"tx.date >= TIME 2013-05-03T14:45:00.123Z", true},
		{"tx.date >= TIME2013-05-03T14:45:00Z", false},
		{"tx.date = IME 2013-05-03T14:45:00Z", false},
		{"tx.date = TIME 2013-05-:45:00Z", false},
		{"tx.date >= TIME 2013-05-03T14:45:00", false},
		{"tx.date >= TIME 2013+05=03T14:45:00Z", false},
		{"account.balance=100", true},
		{"account.balance >= 200", true},
		{"account.balance >= -300", true}, // negative numbers: an extension (fields may be signed)
		{"account.balance >= - 300", false},
		{"account.balance >>= 400", false},
		{"account.balance=33.22.1", false},
		{"account.balance=33.", false},
		{"account.balance=33x", false},
		{"account.balance=99999999999999999999999", true}, // a float, inexact
		{"account.balance=1" + strings.Repeat("0", 400), false},
		{"slashing.amount EXISTS", true},
		{"slashing.amount EXISTS AND account.balance=100", true},
		{"account.balance=100 AND slashing.amount EXISTS", true},
		{"slashing EXISTS", true},
		{"slashing EXISTS 5", false},
		{"hash='136E18F7E4C348B780CF873A0BF43922E5BAFA63'", true},
		{"hash=136E18F7E4C348B780CF873A0BF43922E5BAFA63", false},
		{"cosm-wasm.transfer_amount=100", true},
		{"and AND and='x'", false}, // "and" is a key, AND the keyword
		{"and = 'x' AND and EXISTS", true},
		{"a = 'x' & b = 'y'", false},
	}
	for _, tc := range tests {
		q, err := ParseQuery(tc.in)
		if tc.valid != (err == nil) {
			t.Errorf("ParseQuery(%q): valid %v, got err %v", tc.in, tc.valid, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("ParseQuery(%q) = %v: want ErrInvalid naming where", tc.in, err)
			}
			continue
		}
		again, err := ParseQuery(q.String())
		if err != nil || again.String() != q.String() {
			t.Errorf("%q: String %q does not round-trip: %v", tc.in, q.String(), err)
		}
	}
	if got := MustParseQuery("a>1 AND b CONTAINS 'x'").String(); got != "a > 1 AND b CONTAINS 'x'" {
		t.Fatalf("canonical form %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParseQuery of a bad query did not panic")
		}
	}()
	MustParseQuery("=")
}

// Modelled on Tendermint's query TestMatches: the same cases, their
// attributes given as tags ("key=value").
func TestQueryMatchesTags(t *testing.T) {
	now := time.Now().UTC()
	cases := []struct {
		q     string
		attrs map[string][]string
		want  bool
	}{
		{"tm.events.type='NewBlock'", map[string][]string{"tm.events.type": {"NewBlock"}}, true},
		{"tx.gas > 7", map[string][]string{"tx.gas": {"8"}}, true},
		{"transfer.amount > 7", map[string][]string{"transfer.amount": {"8stake"}}, false}, // values must be numbers here
		{"tx.gas > 7 AND tx.gas < 9", map[string][]string{"tx.gas": {"8"}}, true},
		{"body.weight >= 3.5", map[string][]string{"body.weight": {"3.5"}}, true},
		{"account.balance < 1000.0", map[string][]string{"account.balance": {"900"}}, true},
		{"apples.kg <= 4", map[string][]string{"apples.kg": {"4.0"}}, true},
		{"body.weight >= 4.5", map[string][]string{"body.weight": {fmt.Sprintf("%v", float32(4.5))}}, true},
		{"oranges.kg < 4 AND watermellons.kg > 10", map[string][]string{"oranges.kg": {"3"}, "watermellons.kg": {"12"}}, true},
		{"peaches.kg < 4", map[string][]string{"peaches.kg": {"5"}}, false},
		{"tx.date > DATE 2017-01-01", map[string][]string{"tx.date": {now.Format(dateLayout)}}, true},
		{"tx.date = DATE 2017-01-01", map[string][]string{"tx.date": {"2017-01-01"}}, true},
		{"tx.date = DATE 2018-01-01", map[string][]string{"tx.date": {"2017-01-01"}}, false},
		{"tx.time >= TIME 2013-05-03T14:45:00Z", map[string][]string{"tx.time": {now.Format(time.RFC3339)}}, true},
		{"tx.time = TIME 2013-05-03T14:45:00Z", map[string][]string{"tx.time": {"2018-05-03T14:45:00Z"}}, false},
		{"abci.owner.name CONTAINS 'Igor'", map[string][]string{"abci.owner.name": {"Igor,Ivan"}}, true},
		{"abci.owner.name CONTAINS 'Igor'", map[string][]string{"abci.owner.name": {"Pavel,Ivan"}}, false},
		{"abci.owner.name = 'Igor'", map[string][]string{"abci.owner.name": {"Igor", "Ivan"}}, true},
		{"abci.owner.name = 'Ivan'", map[string][]string{"abci.owner.name": {"Igor", "Ivan"}}, true},
		{"abci.owner.name = 'Ivan' AND abci.owner.name = 'Igor'", map[string][]string{"abci.owner.name": {"Igor", "Ivan"}}, true},
		{"abci.owner.name = 'Ivan' AND abci.owner.name = 'John'", map[string][]string{"abci.owner.name": {"Igor", "Ivan"}}, false},
		{"tm.events.type='NewBlock'", map[string][]string{"tm.events.type": {"NewBlock"}, "app.name": {"fuzzed"}}, true},
		{"app.name = 'fuzzed'", map[string][]string{"tm.events.type": {"NewBlock"}, "app.name": {"fuzzed"}}, true},
		{"tm.events.type='NewHeader' AND app.name = 'fuzzed'", map[string][]string{"tm.events.type": {"NewBlock"}, "app.name": {"fuzzed"}}, false},
		{"slash EXISTS", map[string][]string{"slash.reason": {"missing_signature"}, "slash.power": {"6000"}}, true},
		{"slash EXISTS", map[string][]string{"transfer.recipient": {"a"}, "transfer.sender": {"b"}}, false},
		{"slash.reason EXISTS AND slash.power > 1000", map[string][]string{"slash.reason": {"missing_signature"}, "slash.power": {"6000"}}, true},
		{"slash.reason EXISTS AND slash.power > 1000", map[string][]string{"slash.reason": {"missing_signature"}, "slash.power": {"500"}}, false},
		// Tendermint's TestBigNumbers, on tags: integers compare exactly.
		{"account.balance <= 10000000000000000000", map[string][]string{"account.balance": {"10000000000000000000"}}, true},
		{"account.balance <= 10000000000000000000", map[string][]string{"account.balance": {"10000000000000000001"}}, false},
		{"account.balance > 11234.0", map[string][]string{"account.balance": {"11234.6"}}, true},
	}
	for _, c := range cases {
		if got := matches(t, c.q, Tx{Tags: tagsOf(c.attrs)}); got != c.want {
			t.Errorf("%q on %v: %v, want %v", c.q, c.attrs, got, c.want)
		}
	}
	// A bare tag is a key with the empty value.
	if !matches(t, "critical EXISTS", Tx{Tags: []string{"critical"}}) || !matches(t, "critical = ''", Tx{Tags: []string{"critical"}}) {
		t.Error("a bare tag is not a key")
	}
}

// Conditions on fields, by kind.
func TestQueryMatchesFields(t *testing.T) {
	at := time.Date(2024, 5, 3, 14, 45, 0, 0, time.UTC)
	tx := Tx{Height: 10, Owner: "Ivan", Amount: 2.5, Fee: 7, Big: math.MaxUint64, Small: -3, Ok: true, At: at,
		Err: errors.New("peer timed out"), Meta: TxMeta{Region: "eu-west"}}
	cases := []struct {
		q    string
		want bool
	}{
		{"Height = 10", true},
		{"Height > 9 AND Height < 11", true},
		{"Height >= 11", false},
		{"Height <= 10.5", true},
		{"Height > 9223372036854775808", false}, // above every int64: exact, not through a float
		{"Small < 0 AND Small > -4", true},
		{"Fee = 7 AND Fee > -1", true},
		{"Big = 18446744073709551615", true},
		{"Big > 18446744073709551614", true},
		{"Big < 1", false},
		{"Amount > 2 AND Amount < 2.6", true},
		{"Amount = 2.5", true},
		{"Owner = 'Ivan'", true},
		{"Owner = 'ivan'", false},
		{"Owner CONTAINS 'va'", true},
		{"Owner EXISTS", true},
		{"Ok = 'true'", true},
		{"Ok = 'false'", false},
		{"Ok EXISTS", true},
		{"At = TIME 2024-05-03T14:45:00Z", true},
		{"At = TIME 2024-05-03T16:45:00+02:00", true}, // the same instant
		{"At > TIME 2024-05-03T14:44:59Z", true},
		{"At = DATE 2024-05-03", true}, // the same day
		{"At > DATE 2024-05-02 AND At < DATE 2024-05-04", true},
		{"At < DATE 2024-05-03", false},
		{"Err EXISTS", true},
		{"Err CONTAINS 'timed out'", true},
		{"Err = 'peer timed out'", true},
		{"Meta.Region = 'eu-west'", true},
		{"Meta.Region CONTAINS 'us'", false},
		{"Height = 10 AND Owner = 'Ivan' AND Ok = 'true' AND Meta.Region EXISTS", true},
	}
	for _, c := range cases {
		if got := matches(t, c.q, tx); got != c.want {
			t.Errorf("%q: %v, want %v", c.q, got, c.want)
		}
	}
	zero := Tx{}
	for _, q := range []string{"Height EXISTS", "Owner EXISTS", "Ok EXISTS", "At EXISTS", "Err EXISTS", "Err CONTAINS ''", "Amount EXISTS"} {
		if matches(t, q, zero) {
			t.Errorf("%q matched the zero event", q)
		}
	}
	// A field wins over a tag of the same name.
	if matches(t, "Owner = 'tag'", Tx{Owner: "field", Tags: []string{"Owner=tag"}}) {
		t.Error("a tag shadowed a field")
	}
}

// A query that cannot apply is refused at Subscribe, with ErrInvalid;
// a key that a type lacks makes that type's events never match.
func TestQueryBindErrors(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	bad := []string{
		"Tags = 'x'",     // a slice
		"Meta = 'x'",     // a struct
		"Height = 'ten'", // a number against a string
		"Owner > 3",      // a string against a number
		"Owner < DATE 2024-01-01",
		"Ok = 'yes'", // a boolean is 'true' or 'false'
		"Ok > 1",
		"At = 5", // a time against a number
		"Err > 3",
		"Height CONTAINS '1'",
		"Meta.Nope = 'x'", // no such field, but Tx has tags: fine? no: see below
	}
	for _, q := range bad[:len(bad)-1] {
		if _, err := Subscribe[Tx](b, MatchQuery(q)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", q, err)
		}
	}
	// Tx carries tags: an unknown key may be a tag.
	must(Subscribe[Tx](b, MatchQuery(bad[len(bad)-1])))(t)
	// Tick carries no tags and has no field Conn: a typo, refused.
	if _, err := Subscribe[Tick](b, MatchQuery("Conn = 1")); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown key on an untagged type: %v", err)
	}
	// Over several types, one of them having the key is enough; the others
	// then match nothing.
	s := must(SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Closed]()}, MatchQuery("Conn >= 0"), Buffer(4)))(t)
	ticks := must(NewEmitter[Tick](b))(t)
	closes := must(NewEmitter[Closed](b))(t)
	_ = ticks.Emit(Tick{1})
	_ = closes.Emit(Closed{1})
	s.Unsubscribe()
	if got := fmt.Sprint(drain(t, s.Out())); got != "[{1}]" {
		t.Fatalf("got %v, want only Closed{1}", got)
	}
	if _, err := Subscribe[Tick](b, MatchQuery("N >")); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad syntax: %v", err)
	}
}

// Modelled on Tendermint's TestSubscribeDuplicateKeys: a key with several
// values matches a condition if one value does.
func TestQueryDuplicateKeys(t *testing.T) {
	tags := []string{"transfer.sender=foo", "transfer.sender=bar", "transfer.sender=baz",
		"withdraw.rewards=1", "withdraw.rewards=17", "withdraw.rewards=22"}
	for q, want := range map[string]bool{
		"withdraw.rewards='17'":                          true,
		"withdraw.rewards='22'":                          true,
		"withdraw.rewards='1' AND withdraw.rewards='22'": true,
		"withdraw.rewards='100'":                         false,
	} {
		if got := matches(t, q, Tx{Tags: tags}); got != want {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}

// Modelled on Tendermint's TestDifferentClients: subscriptions with
// different queries each get what matches them.
func TestQueryDifferentClients(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tx](b))(t)
	s1 := must(Subscribe[Tx](b, Client("client-1"), MatchQuery("tm.events.type='NewBlock'")))(t)
	_ = em.Emit(Tx{Owner: "Iceman", Tags: []string{"tm.events.type=NewBlock"}})
	if recv(t, s1.Out(), "s1").Owner != "Iceman" {
		t.Fatal("s1")
	}
	s2 := must(Subscribe[Tx](b, Client("client-2"), MatchQuery("tm.events.type='NewBlock' AND abci.account.name='Igor'")))(t)
	_ = em.Emit(Tx{Owner: "Ultimo", Tags: []string{"tm.events.type=NewBlock", "abci.account.name=Igor"}})
	if recv(t, s1.Out(), "s1").Owner != "Ultimo" || recv(t, s2.Out(), "s2").Owner != "Ultimo" {
		t.Fatal("s1 or s2")
	}
	s3 := must(Subscribe[Tx](b, Client("client-3"), MatchQuery("tm.events.type='NewRoundStep' AND abci.account.name='Igor' AND abci.invoice.number = 10")))(t)
	_ = em.Emit(Tx{Owner: "Valeria Richards", Tags: []string{"tm.events.type=NewRoundStep"}})
	if len(s3.Out()) != 0 {
		t.Fatal("s3 got an event that lacks two of its attributes")
	}
}

// Filters stay allocation-free at emit time: a query on fields, a query and
// a tag query on exact tags (value-receiver EventTags), to a typed channel
// subscriber.
func TestFiltersDoNotAllocate(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tx](b))(t)
	subs := []*Stream[Tx]{
		must(Subscribe[Tx](b, Buffer(1), OnSlow(Drop), MatchQuery("Height > 5 AND Owner = 'Ivan' AND At > DATE 2020-01-01 AND Err EXISTS")))(t),
		must(Subscribe[Tx](b, Buffer(1), OnSlow(Drop), MatchQuery("peer = 'node-2' AND critical EXISTS")))(t),
		must(Subscribe[Tx](b, Buffer(1), OnSlow(Drop), MatchTags(TagQuery{All: []string{"peer=node-2"}, None: []string{"test"}})))(t),
	}
	ev := Tx{Height: 6, Owner: "Ivan", At: time.Now(), Err: errors.New("x"), Tags: []string{"peer=node-2", "critical"}}
	allocs := testing.AllocsPerRun(200, func() {
		_ = em.Emit(ev)
		for _, s := range subs {
			<-s.Out()
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Emit, want 0", allocs)
	}
}

// FuzzParseQuery: the parser never panics, accepted queries round-trip
// through String, and binding them to a type and evaluating them never
// panics either.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"a = 'x'", "Height > 5 AND Owner CONTAINS 'v'", "At >= TIME 2013-05-03T14:45:00Z",
		"At = DATE 2013-05-03", "x EXISTS", "Big <= 18446744073709551615", "Amount < -1.5", "'", "a = '", "DATE 1"} {
		f.Add(s)
	}
	b := New(Config{})
	em, _ := NewEmitter[Tx](b)
	ev := Tx{Height: 3, Owner: "x", Tags: []string{"a=x", "x=1", "At=2013-05-03"}}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseQuery(%q): %v without ErrInvalid", s, err)
			}
			return
		}
		again, err := ParseQuery(q.String())
		if err != nil || again.String() != q.String() {
			t.Fatalf("%q: %q does not round-trip: %v", s, q.String(), err)
		}
		sub, err := Subscribe[Tx](b, MatchQuery(s), Buffer(1), OnSlow(Drop))
		if err != nil {
			return // does not apply to Tx
		}
		_ = em.Emit(ev)
		sub.Unsubscribe()
	})
}

func TestNumberCompare(t *testing.T) {
	for _, c := range []struct {
		lit  string
		v    int64
		want int
	}{
		{"5", 4, -1}, {"5", 5, 0}, {"-5", -4, 1}, {"5.5", 5, -1}, {"5.0", 5, 0},
		{"9223372036854775807", math.MaxInt64, 0}, {"9223372036854775808", math.MaxInt64, -1},
	} {
		n, err := parseNumber(c.lit)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.cmpInt(c.v); got != c.want {
			t.Errorf("cmpInt(%d) against %s = %d, want %d", c.v, c.lit, got, c.want)
		}
	}
	n, _ := parseNumber("1")
	if n.cmpFloat(math.NaN()) != unordered || holds(opEq, unordered) || holds(opLe, unordered) {
		t.Error("NaN compares")
	}
	if u, _ := parseNumber(strconv.FormatUint(math.MaxUint64, 10)); u.cmpUint(math.MaxUint64) != 0 || u.cmpInt(-1) != -1 {
		t.Error("uint64 operand")
	}
}
