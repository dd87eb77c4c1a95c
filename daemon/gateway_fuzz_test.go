package daemon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/flynn/noise"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/remote"
)

// Fuzz test of what the gateway parses from the network: capability
// strings, hellos and welcomes (gateway_intro.go), and the payloads of its
// messages (SpawnKind and its arguments, MemberList, SpawnResult,
// gatewayWelcome, a hello's []byte, UpgradeApp and the plan made of it,
// UpgradeResult, childUpgrade). The seeds run with every `go test`;
// CI also fuzzes briefly:
//
//	go test -run '^$' -fuzz '^FuzzGatewayMessages$' -fuzztime 30000x ./daemon
//
// The first byte of an input picks what the rest is.

// fuzzKey is a fixed node key pair, so that seeded hellos open.
func fuzzKey(tb testing.TB, seed byte) noise.DHKey {
	priv := bytes.Repeat([]byte{seed}, 32)
	pub, err := remote.PublicKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return noise.DHKey{Private: priv, Public: pub}
}

const (
	fuzzCapability = iota
	fuzzHello
	fuzzWelcome
	fuzzPayload
	fuzzKinds
)

func FuzzGatewayMessages(f *testing.F) {
	d, m := fuzzKey(f, 1), fuzzKey(f, 2)
	id := actor.WireID{Loop: 1, Slot: 2, Gen: 3, Secret: [16]byte{4, 5, 6}}
	add := func(kind byte, b []byte) { f.Add(append([]byte{kind}, b...)) }

	for _, s := range []string{
		Capability{Node: "a b/é", Addr: "127.0.0.1:7700", ID: id}.String(),
		Capability{Node: "n", Addr: "[::1]:1", ID: actor.WireID{Loop: 65535, Slot: 1<<32 - 1, Gen: 1<<32 - 1}}.String(),
		"actord://a@127.0.0.1:7700/1.0.1#00112233445566778899aabbccddeeff",
		"actord://%zz@h:1/1.2.3#00", "actord://@:/..#", " \n", "",
	} {
		add(fuzzCapability, []byte(s))
	}
	hello, _, err := newHello(d, "d", id, "m", "127.0.0.1:2", m.Public)
	if err != nil {
		f.Fatal(err)
	}
	add(fuzzHello, hello)
	add(fuzzHello, hello[:len(hello)-1])
	add(fuzzHello, make([]byte, maxHello+1))
	add(fuzzWelcome, make([]byte, welcomeLen))
	add(fuzzWelcome, nil)
	for _, v := range []any{
		// Types with refs, as msgpack encodes them, without the refs (they
		// need a node's connection to encode).
		map[string]any{"Member": "b", "Kind": "echo", "Args": map[string]any{"n": int8(-1), "l": []any{uint64(1 << 63), 1.5, "x", []byte{1}, nil}}},
		map[string]any{"Args": uint32(7), "Owner": nil},
		map[string]any{"Members": []any{map[string]any{"Name": "a", "Addr": "127.0.0.1:1", "Self": true, "Gateway": nil}}},
		map[string]any{"Code": SpawnNoGateway, "Msg": "m", "Ref": nil},
		map[string]any{"Code": 99},
		gatewayWelcome{Member: "b", Msg: make([]byte, welcomeLen)},
		ListMembers{},
		map[string]any{"App": "shop", "Child": "w1", "Kind": "worker2", "Progress": nil},
		map[string]any{"Spec": shopSpec(), "Progress": nil},
		gateway.UpgradeResult{App: "shop", Steps: []gateway.UpgradeStep{{Child: "w1", Outcome: "refused", Reason: "r"}},
			Result: gateway.AppResult{Code: gateway.AppFailed, Msg: "m"}},
		map[string]any{"Old": "worker", "New": "worker2", "Args": map[string]any{"greeting": "x"}, "Back": true, "Ref": nil},
		hello,
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		add(fuzzPayload, b)
	}
	add(fuzzPayload, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // an array declaring 4 G elements
	add(fuzzPayload, bytes.Repeat([]byte{0x91}, 200))      // nested deeper than a frame allows
	add(fuzzKinds, []byte{0x93, 0x01, 0xa1, 'x', 0xc0})

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		kind, b := in[0]%(fuzzKinds+1), in[1:]
		switch kind {
		case fuzzCapability:
			c, err := ParseCapability(string(b))
			if err != nil {
				if !errors.Is(err, ErrBadCapability) {
					t.Fatalf("ParseCapability(%q): %v, not ErrBadCapability", b, err)
				}
				return
			}
			// What parses round-trips.
			c2, err := ParseCapability(c.String())
			if err != nil || c2 != c {
				t.Fatalf("ParseCapability(%q) = %+v, whose String %q parses to %+v, %v", b, c, c.String(), c2, err)
			}
		case fuzzHello:
			h, err := openHello(m, "m", "127.0.0.1:2", b)
			if err != nil {
				return
			}
			// Anyone may seal a hello to m; what opens names the sealer's key.
			if len(h.key) != 32 || h.from == "" || len(h.from) > maxHelloName {
				t.Fatalf("opened hello from %q with a key of %d bytes", h.from, len(h.key))
			}
			if _, err := h.welcome(id); err != nil {
				t.Fatalf("welcome to an opened hello: %v", err)
			}
		case fuzzWelcome:
			_, recv, err := newHello(d, "d", id, "m", "127.0.0.1:2", m.Public)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := openWelcome(recv, b); err == nil {
				t.Fatalf("a welcome made without m's key opened: %x", b)
			}
		case fuzzPayload, fuzzKinds:
			fuzzPayloads(t, m, b)
		}
	})
}

// fuzzPayloads decodes b as each of the gateway's payloads and feeds what
// decodes to the code that handles it. The remote layer passes on only
// payloads whose declared lengths fit the frame and whose nesting is at
// most 100 deep (remote/frame.go, checkValue), decoding refs with the
// connection's node; here refs do not decode, the rest is as it arrives.
// A panic of the msgpack decoder is a payload that does not decode, as
// in the remote layer, which recovers it (a key given twice for an
// interface field makes msgpack set a value it cannot address).
func fuzzPayloads(t *testing.T, m noise.DHKey, b []byte) {
	if _, err := checkMsgpack(b, 0, 0); err != nil {
		return
	}
	unmarshal := func(b []byte, v any) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("decoder panic: %v", r)
			}
		}()
		return msgpack.Unmarshal(b, v)
	}
	var sk SpawnKind
	if unmarshal(b, &sk) == nil {
		args := normalise(sk.Args)
		if again := normalise(args); fmt.Sprint(again) != fmt.Sprint(args) {
			t.Fatalf("normalise is not idempotent: %v then %v", args, again)
		}
		_, _ = callKind(func(args any) (actor.Factory, error) {
			if s, ok := args.(string); ok && s == "panic" {
				panic(s)
			}
			return nil, nil
		}, args)
	}
	var ml MemberList
	_ = unmarshal(b, &ml)
	var sr SpawnResult
	if unmarshal(b, &sr) == nil {
		if err := sr.Err(); (err == nil) != (sr.Code == SpawnOK) {
			t.Fatalf("SpawnResult%+v.Err() = %v", sr, err)
		}
	}
	var w gatewayWelcome
	if unmarshal(b, &w) == nil {
		_, recv, err := newHello(fuzzKey(t, 1), "d", actor.WireID{}, "m", "127.0.0.1:2", m.Public)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openWelcome(recv, w.Msg); err == nil {
			t.Fatalf("a welcome made without m's key opened: %x", w.Msg)
		}
	}
	var up gateway.UpgradeApp
	if unmarshal(b, &up) == nil {
		if _, err := upgradeTarget(up); err == nil {
			// A plan from any request: refused with a reason, or kinds
			// changed only.
			nw, changed, err := upgradePlan(shopSpec(), up)
			if err == nil && (len(changed) == 0 || len(nw.Children) != len(shopSpec().Children)) {
				t.Fatalf("plan of %+v: %+v, children %v changed", up, nw, changed)
			}
		}
	}
	var ur gateway.UpgradeResult
	if unmarshal(b, &ur) == nil {
		if err := ur.Result.Err(); (err == nil) != (ur.Result.Code == gateway.AppOK) {
			t.Fatalf("UpgradeResult%+v.Err() = %v", ur, err)
		}
	}
	var cu childUpgrade
	if unmarshal(b, &cu) == nil {
		if _, err := plainArgs(cu.Args); err != nil && len(cu.Args) == 0 {
			t.Fatalf("plainArgs of no arguments: %v", err)
		}
	}
	var hello []byte
	if unmarshal(b, &hello) == nil {
		_, _ = openHello(m, "m", "127.0.0.1:2", hello)
	}
}

// checkMsgpack returns the end of the msgpack value at b[i:], or an error
// if it is truncated, declares more elements or bytes than b has left, or
// nests deeper than the remote layer lets through.
func checkMsgpack(b []byte, i, depth int) (int, error) {
	if depth > 100 {
		return 0, errors.New("too deep")
	}
	if i >= len(b) {
		return 0, errors.New("truncated")
	}
	c := b[i]
	i++
	length := func(w int) (int, error) {
		if len(b)-i < w {
			return 0, errors.New("truncated length")
		}
		var n uint64
		for _, x := range b[i : i+w] {
			n = n<<8 | uint64(x)
		}
		i += w
		if n > uint64(len(b)-i) {
			return 0, errors.New("length beyond the input")
		}
		return int(n), nil
	}
	skip := func(n int) (int, error) {
		if len(b)-i < n {
			return 0, errors.New("truncated value")
		}
		return i + n, nil
	}
	items := func(n int) (int, error) {
		var err error
		for range n {
			if i, err = checkMsgpack(b, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return i, nil
	case c >= 0x80 && c <= 0x8f:
		return items(2 * int(c&0x0f))
	case c >= 0x90 && c <= 0x9f:
		return items(int(c & 0x0f))
	case c >= 0xa0 && c <= 0xbf:
		return skip(int(c & 0x1f))
	}
	switch c {
	case 0xc4, 0xd9:
		n, err := length(1)
		if err != nil {
			return 0, err
		}
		return skip(n)
	case 0xc5, 0xda:
		n, err := length(2)
		if err != nil {
			return 0, err
		}
		return skip(n)
	case 0xc6, 0xdb:
		n, err := length(4)
		if err != nil {
			return 0, err
		}
		return skip(n)
	case 0xc7, 0xc8, 0xc9:
		n, err := length(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[c])
		if err != nil {
			return 0, err
		}
		return skip(1 + n)
	case 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return skip(map[byte]int{0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[c])
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return skip(1 + 1<<(c-0xd4))
	case 0xdc, 0xdd, 0xde, 0xdf:
		w := 2
		if c == 0xdd || c == 0xdf {
			w = 4
		}
		if len(b)-i < w {
			return 0, errors.New("truncated length")
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if w == 4 {
			n = int(binary.BigEndian.Uint32(b[i:]))
		}
		i += w
		if c >= 0xde {
			n *= 2
		}
		if n > len(b)-i { // every element takes a byte at least
			return 0, errors.New("count beyond the input")
		}
		return items(n)
	}
	return 0, fmt.Errorf("byte %#x", c)
}
