// Package kvmodel is the sequential specification of a key-value store
// (get, put, delete of string keys), for checking with porcupine that a
// history of the kvstore's operations is linearizable: the example's own
// test and the simulator's both use it.
package kvmodel

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Input is one operation: Op is "get", "put" or "del".
type Input struct {
	Op, Key, Val string
}

// Output is what a get returned (a put's or a delete's output is not
// checked).
type Output struct {
	Val     string
	Present bool
}

// state is the state of one key.
type state = Output

// Model checks a history key by key (porcupine partitions it by Input.Key).
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string // in order of first appearance: no map order
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		s, in := st.(state), input.(Input)
		switch in.Op {
		case "put":
			return true, state{Val: in.Val, Present: true}
		case "del":
			return true, state{}
		}
		return output.(Output) == s, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(Input)
		switch in.Op {
		case "put":
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Val)
		case "del":
			return fmt.Sprintf("del(%s)", in.Key)
		}
		if out := output.(Output); out.Present {
			return fmt.Sprintf("get(%s) -> %s", in.Key, out.Val)
		}
		return fmt.Sprintf("get(%s) -> absent", in.Key)
	},
	DescribeState: func(st any) string {
		if s := st.(state); s.Present {
			return s.Val
		}
		return "absent"
	},
}
