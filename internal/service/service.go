// Package service runs a suture-style service (Serve(ctx) error) outside a
// supervisor, for programs and tests that want one started and stopped by
// hand.
package service

import "context"

// Start runs serve on a goroutine with a context of its own and waits until
// ready is closed. It returns a stop function that cancels that context and
// waits for serve to return. If serve returns before ready, Start returns
// its error; if ctx ends first, Start stops serve and returns ctx's error.
func Start(ctx context.Context, serve func(context.Context) error, ready <-chan struct{}) (stop func(), err error) {
	sctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(sctx) }()
	select {
	case <-ready:
		return func() { cancel(); <-errc }, nil
	case err := <-errc:
		cancel()
		return nil, err
	case <-ctx.Done():
		cancel()
		<-errc
		return nil, ctx.Err()
	}
}
