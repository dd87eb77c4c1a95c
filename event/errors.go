package event

import "errors"

// Errors of the bus. Test for them with errors.Is: the error a call returns,
// or that Subscription.Err reports, may wrap one of these with more detail.
var (
	// ErrUnsubscribed is why a subscription ended when its owner called
	// Unsubscribe.
	ErrUnsubscribed = errors.New("event: unsubscribed")
	// ErrOutOfCapacity is why a subscription with the Cancel policy ended:
	// its buffer (or, for an actor, the actor's loop queue) was full when an
	// event had to be delivered. The events delivered before it were
	// delivered in order; none after it are.
	ErrOutOfCapacity = errors.New("event: subscriber out of capacity")
	// ErrBusClosed is why every subscription of a closed bus ended, and what
	// Emit, NewEmitter, the Subscribe functions and WaitEmitter return once
	// the bus is closed.
	ErrBusClosed = errors.New("event: bus closed")
	// ErrEmitterClosed is what Emit returns after the emitter was closed.
	ErrEmitterClosed = errors.New("event: emitter closed")
	// ErrTooManySubscriptions is what the Subscribe functions return when the
	// bus already holds Config.MaxSubscriptions live subscriptions.
	ErrTooManySubscriptions = errors.New("event: too many subscriptions")
	// ErrSubscriberGone is why an actor subscription ended when its actor
	// can no longer receive: it stopped (seen by a Runtime bridge on the same
	// bus) or its system shut down or rejected the ref. The error wraps the
	// cause from the actor package when there is one.
	ErrSubscriberGone = errors.New("event: subscriber gone")
	// ErrAlreadySubscribed is what the Subscribe functions return when the
	// client (see Client) already holds a subscription to the same types
	// with the same query.
	ErrAlreadySubscribed = errors.New("event: already subscribed")
	// ErrSubscriptionNotFound is what Bus.Unsubscribe and
	// Bus.UnsubscribeAll return when the client holds no such subscription.
	ErrSubscriptionNotFound = errors.New("event: subscription not found")
	// ErrInvalid means a call was given bad arguments: an interface type as
	// an event type, no types, a buffer below 1, a filter for a type that is
	// not subscribed, the zero Ref, a nil system.
	ErrInvalid = errors.New("event: invalid argument")
)
