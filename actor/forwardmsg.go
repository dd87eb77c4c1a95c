package actor

// ForwardMsg is Forward with another message: to receives msg instead of
// the one being handled, with the original sender and, for an ask, the
// original asker waiting for to's reply. A router that tags what it hands
// on (to tell its messages from the others its target receives) needs it;
// the rules, errors and cost are Forward's.
func (c *Context) ForwardMsg(to Ref, msg any) error { return c.forward(to, msg, true) }
