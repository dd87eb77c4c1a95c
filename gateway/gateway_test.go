package gateway_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

func ExampleParseCapability() {
	c, err := gateway.ParseCapability("actord://a@127.0.0.1:7700/1.0.1#00112233445566778899aabbccddeeff\n")
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Node, c.Addr, c.ID.Loop, c.ID.Slot, c.ID.Gen)
	fmt.Println(c)
	// Output:
	// a 127.0.0.1:7700 1 0 1
	// actord://a@127.0.0.1:7700/1.0.1#00112233445566778899aabbccddeeff
}

func TestCapabilityRoundTrip(t *testing.T) {
	c := gateway.Capability{Node: "a b/c", Addr: "[::1]:7700", ID: actor.WireID{Loop: 65535, Slot: 1 << 31, Gen: 7}}
	copy(c.ID.Secret[:], "0123456789abcdef")
	got, err := gateway.ParseCapability(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip of %s: %+v, %v", c, got, err)
	}
}

func TestParseCapabilityRejects(t *testing.T) {
	for _, s := range []string{
		"", "http://a@127.0.0.1:1/0.0.0#00112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1:1/0.0.0", "actord://@127.0.0.1:1/0.0.0#00112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1/0.0.0#00112233445566778899aabbccddeeff", "actord://a@0.0.0.0:1/0.0.0#00112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1:1/0.0#00112233445566778899aabbccddeeff", "actord://a@127.0.0.1:1/65536.0.0#00112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1:1/0.0.0#0011", "actord://a@127.0.0.1:1/0.0.0#zz112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1:1/0.0.0#" + strings.Repeat("0", 34),
	} {
		if _, err := gateway.ParseCapability(s); !errors.Is(err, gateway.ErrBadCapability) {
			t.Errorf("%q: %v, want ErrBadCapability", s, err)
		}
	}
}

func TestSpawnResultErr(t *testing.T) {
	for code, want := range map[int]error{gateway.SpawnNoMember: gateway.ErrNoSuchMember, gateway.SpawnNoGateway: gateway.ErrNoGateway, gateway.SpawnFailed: gateway.ErrSpawn} {
		if err := (gateway.SpawnResult{Code: code, Msg: "x"}).Err(); !errors.Is(err, want) {
			t.Errorf("code %d: %v, want %v", code, err, want)
		}
	}
	if err := (gateway.SpawnResult{}).Err(); err != nil {
		t.Errorf("success: %v", err)
	}
}
