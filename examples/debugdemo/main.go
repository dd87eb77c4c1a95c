// Command debugdemo runs a small supervised application with the debug
// recorder and server, for trying `actord debug` against (see
// docs/debugging.md):
//
//	go run ./examples/debugdemo --addr 127.0.0.1:6060 --token-file /tmp/actord-debug.token
//
// The application, under the supervisor "shop" (one_for_one):
//
//   - shop/orders (loop 0) counts orders and keeps the last ones; its state
//     is traced, so every order shows the diff it made.
//   - shop/payments (loop 1) handles payments and crashes on a payment of
//     a negative amount; the supervisor restarts it.
//   - shop/mailer (loop 0) is stuck: its state has "paused": true and it
//     refuses every mail until an operator patches its state.
//   - a feeder sends an order every --every, a payment with each, a bad
//     payment every 5th order, and a mail for each order.
//
// It runs until interrupted, or for --for if set.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/supervisor"
)

// Order is placed by the feeder.
type Order struct {
	ID    int
	Item  string
	Price int
}

// Pay asks payments to charge an order.
type Pay struct {
	Order  int
	Amount int
}

// Mail asks the mailer to send a confirmation.
type Mail struct {
	To      string
	Subject string
}

// tick makes the feeder place the next order.
type tick struct{}

type orders struct {
	Count   int      `json:"count"`
	Revenue int      `json:"revenue"`
	Recent  []string `json:"recent"`
}

func (o *orders) Receive(_ *actor.Context, msg any) (any, error) {
	if m, ok := msg.(Order); ok {
		o.Count++
		o.Revenue += m.Price
		o.Recent = append(o.Recent, m.Item)
		if len(o.Recent) > 3 {
			o.Recent = o.Recent[1:]
		}
	}
	return o.Count, nil
}

func (o *orders) DebugState() any { return o }

type payments struct{ charged int }

func (p *payments) Receive(_ *actor.Context, msg any) (any, error) {
	if m, ok := msg.(Pay); ok {
		if m.Amount < 0 {
			panic(fmt.Sprintf("payments: negative amount %d for order %d", m.Amount, m.Order))
		}
		p.charged += m.Amount
	}
	return p.charged, nil
}

type mailer struct {
	Paused bool `json:"paused"`
	Sent   int  `json:"sent"`
}

var errPaused = errors.New("mailer: paused")

func (m *mailer) Receive(_ *actor.Context, msg any) (any, error) {
	if _, ok := msg.(Mail); ok {
		if m.Paused {
			return nil, errPaused
		}
		m.Sent++
	}
	return m.Sent, nil
}

func (m *mailer) DebugState() any { return m }

func (m *mailer) DebugPatch(doc json.RawMessage) error {
	var n mailer
	if err := json.Unmarshal(doc, &n); err != nil {
		return err
	}
	*m = n
	return nil
}

// feeder drives the application with a timer.
type feeder struct {
	orders, payments, mailer actor.Ref
	n                        int
	every                    time.Duration
}

var items = []string{"teapot", "kettle", "mug", "spoon", "saucer"}

func (f *feeder) Start(c *actor.Context) error {
	c.Every(f.every, tick{})
	return nil
}

func (f *feeder) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(tick); ok {
		f.n++
		price := 3 + f.n%7
		_ = c.Send(f.orders, Order{ID: f.n, Item: items[f.n%len(items)], Price: price})
		amount := price
		if f.n%5 == 0 {
			amount = -price
		}
		c.Ask(f.payments, Pay{Order: f.n, Amount: amount}).Then(func(*actor.Context, any, error) {})
		_ = c.Send(f.mailer, Mail{To: fmt.Sprintf("customer%d@example.com", f.n), Subject: fmt.Sprintf("order %d", f.n)})
	}
	return nil, nil
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("debugdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:6060", "debug server address")
	tokenFile := fs.String("token-file", "/tmp/actord-debug.token", "where to write the access token (mode 0600)")
	every := fs.Duration("every", 500*time.Millisecond, "time between orders")
	runFor := fs.Duration("for", 0, "stop after this long (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	if err := demo(ctx, *addr, *tokenFile, *every, stderr); err != nil {
		fmt.Fprintln(stderr, "debugdemo:", err)
		return 1
	}
	return 0
}

// demo runs the application until ctx is done.
func demo(ctx context.Context, addr, tokenFile string, every time.Duration, logw io.Writer) error {
	return demoWith(ctx, addr, tokenFile, every, logw, nil)
}

// demoWith is demo that sends the debug server's address on ready.
func demoWith(ctx context.Context, addr, tokenFile string, every time.Duration, logw io.Writer, ready chan<- string) error {
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	acfg := actor.Config{Loops: 2, Logger: logger, OnCrash: func(*actor.Crash) {}}
	rec := debug.Install(&acfg, debug.Config{})
	sys := actor.NewSystem(acfg)
	defer func() { _ = sys.Shutdown(context.Background()) }()
	if err := rec.Attach(sys); err != nil {
		return err
	}
	srv, err := debug.NewServer(rec, debug.ServerConfig{Addr: addr, TokenFile: tokenFile, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(logw, "debugdemo: debug server on %s, token in %s\n", srv.Addr(), tokenFile)

	sup, err := sys.Spawn(ctx, supervisor.New(supervisor.Spec{
		Name: "shop", MaxR: 1000, MaxT: time.Minute, Logger: logger,
		Children: []supervisor.ChildSpec{
			supervisor.Worker("orders", func() actor.Actor { return &orders{Recent: []string{}} }),
			supervisor.Worker("payments", func() actor.Actor { return &payments{} }, actor.OnLoop(1)),
			supervisor.Worker("mailer", func() actor.Actor { return &mailer{Paused: true} }),
		},
	}), actor.OnLoop(0), actor.Name("shop"))
	if err != nil {
		return err
	}
	// A child on another loop is started asynchronously: ask until every
	// child has its ref.
	refs := map[string]actor.Ref{}
	for len(refs) < 3 {
		v, err := sys.Ask(ctx, sup, supervisor.WhichChildren{})
		if err != nil {
			return err
		}
		for _, c := range v.([]supervisor.ChildInfo) {
			if !c.Ref.IsZero() {
				refs[c.ID] = c.Ref
			}
		}
	}
	if err := rec.SetTraceActor(ctx, refs["orders"], true); err != nil {
		return err
	}
	if _, err := sys.Spawn(ctx, func() actor.Actor {
		return &feeder{orders: refs["orders"], payments: refs["payments"], mailer: refs["mailer"], every: every}
	}, actor.OnLoop(1), actor.Name("feeder")); err != nil {
		return err
	}
	if ready != nil {
		ready <- srv.Addr()
	}
	<-ctx.Done()
	return nil
}
