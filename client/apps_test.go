package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	"github.com/actord/actord/cluster"
	"github.com/actord/actord/daemon"
)

// startAppDaemon starts a daemon that is the only member of its
// application registry, with short leases.
func startAppDaemon(t *testing.T, name string) *daemon.Daemon {
	t.Helper()
	cfg := daemon.Config{
		Name: name, Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: daemon.Off,
		Loops: 2, DataDir: t.TempDir(), ShutdownTimeout: 10 * time.Second,
		Cluster: cluster.Config{Profile: cluster.ProfileFast, JoinInterval: 100 * time.Millisecond},
		Logger:  quiet(),
		Apps: daemon.AppsConfig{Members: []string{name}, Tick: 20 * time.Millisecond, Lease: time.Second,
			RenewEvery: 200 * time.Millisecond, Margin: 100 * time.Millisecond},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	kinds(t, d)
	return d
}

func TestApps(t *testing.T) {
	d := startAppDaemon(t, "a")
	c := dial(t, readCap(t, d))
	ctx := ctxT(t)
	if _, err := client.ParseAppSpec([]byte(`{"name": "web", "colour": "red"}`)); !errors.Is(err, client.ErrBadAppSpec) {
		t.Fatalf("parse of an unknown member: %v, want ErrBadAppSpec", err)
	}
	spec, err := client.ParseAppSpec([]byte(`{"name": "web", "strategy": "one_for_all", "intensity": 5, "period": "10s",
		"children": [{"name": "front", "kind": "echo"}, {"name": "back", "kind": "echo", "shutdown": "brutal_kill", "node": "a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeployApp(ctx, spec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "web runs on a", func() bool {
		apps, err := c.Apps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(apps) == 1 && apps[0].Spec.Name == "web" && apps[0].Node == "a" && apps[0].State == "running" &&
			apps[0].Desired == "running" && len(apps[0].Spec.Children) == 2
	})
	if err := c.StopApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 1 || apps[0].State != "stopped" {
		t.Fatalf("after stop: %+v, %v", apps, err)
	}
	if err := c.RemoveApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 0 {
		t.Fatalf("after remove: %+v, %v", apps, err)
	}
	if err := c.StopApp(ctx, "web"); !errors.Is(err, client.ErrUnknownApp) {
		t.Fatalf("stop of a removed application: %v, want ErrUnknownApp", err)
	}
	bad := spec
	bad.Children = append(bad.Children, client.AppChild{Name: "x", Kind: "tree", Args: map[string]any{"n": 3}})
	if err := c.DeployApp(ctx, bad); !errors.Is(err, client.ErrBadAppSpec) || !strings.Contains(err.Error(), "children[2].args") {
		t.Fatalf("deploy of bad args: %v, want ErrBadAppSpec naming children[2].args", err)
	}

	// A capability with the wrong secret has no rights: every call fails
	// as with a dead actor, and nothing is deployed.
	cp := d.Gateway().Capability()
	cp.ID.Secret[0] ^= 1
	forged := dial(t, cp.String())
	if err := forged.DeployApp(ctx, spec); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("deploy with a forged capability: %v, want actor.ErrDead", err)
	}
	if _, err := forged.Apps(ctx); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("list with a forged capability: %v, want actor.ErrDead", err)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 0 {
		t.Fatalf("after the forged deploy: %+v, %v", apps, err)
	}
}

func TestAppsOff(t *testing.T) {
	d := startDaemon(t, "a")
	c := dial(t, readCap(t, d))
	if _, err := c.Apps(ctxT(t)); !errors.Is(err, client.ErrAppsOff) {
		t.Fatalf("list on a daemon without applications: %v, want ErrAppsOff", err)
	}
	if err := c.StopApp(ctxT(t), "x"); !errors.Is(err, client.ErrAppsOff) {
		t.Fatalf("stop on a daemon without applications: %v, want ErrAppsOff", err)
	}
}
