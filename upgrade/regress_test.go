package upgrade_test

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/upgrade"
)

// v2ToV3 is a second upgrade of the counter, to another version of the same
// type; its factory's instances say so.
func v2ToV3() upgrade.Migration[*counterV2, *counterV2] {
	return upgrade.Migration[*counterV2, *counterV2]{From: "v2", To: "v3",
		Forward: func(o *counterV2) (*counterV2, error) { n := *o; n.conts = append(n.conts, "v3"); return &n, nil },
		Factory: func() *counterV2 { return &counterV2{conts: []string{"fresh v3"}} }}
}

// A later upgrade without a watch ends the watch of an earlier one: the
// earlier guard neither counts the later version's crashes nor fails its
// health check, so it never rolls the actor back past the later upgrade
// (here, from v3 to v1 while the actor waits, suspended, for its restart).
func TestUnwatchedLaterUpgradeEndsEarlierWatch(t *testing.T) {
	for _, how := range []string{"crashes", "health"} {
		t.Run(how, func(t *testing.T) {
			rep := newReports()
			m := newManual(t, 1, rep)
			var r actor.Ref
			p := m.spawn(func() actor.Actor {
				return &lazyParent{start: func() actor.Actor { return &counterV1{} }, child: &r}
			})
			mig := migration()
			o := upgrade.Options{Window: time.Hour, HealthEvery: time.Second}
			if how == "crashes" {
				mig.Health, o.MaxCrashes = nil, 1
			}
			m.begin("up", r, mig, o)
			m.do("v3", func(c *actor.Context) actor.Promise {
				return upgrade.Begin(c, r, v2ToV3(), upgrade.Options{}) // no watch
			})
			if err, ok := m.result("v3"); !ok || err != nil {
				t.Fatalf("second upgrade: %v %v", err, ok)
			}
			if how == "crashes" {
				_ = m.s.Send(r, boom{}) // v3 crashes once
				m.settle()
				_ = m.s.Send(p, restartChild{})
			} else {
				_ = m.s.Send(r, sick{}) // fails v1 -> v2's health check, which is not v3's
			}
			m.advance(10 * time.Second)
			got, ok := inspect(t, m.s, r).(*counterV2)
			if !ok || len(got.conts) == 0 || (got.conts[0] != "fresh v3" && got.conts[len(got.conts)-1] != "v3") {
				t.Fatalf("the actor runs %T %+v, want v3; reports %v", inspect(t, m.s, r), got, rep.all())
			}
			for _, x := range rep.all() {
				if x.Outcome == upgrade.RolledBack || x.Outcome == upgrade.RollbackFailed {
					t.Fatalf("the superseded watch acted: %v", rep.all())
				}
			}
		})
	}
}
