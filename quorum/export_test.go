package quorum

// DeferredQueued returns how many thrifty asks are queued unsent.
func (m *Manager) DeferredQueued() int { return m.defer_.queued() }
