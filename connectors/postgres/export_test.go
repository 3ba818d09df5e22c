package postgres

// OwnerPID is the backend that holds s's lease owner lock, and
// OwnerHeld whether s holds it now.
func OwnerPID(s *Store) uint32 { return s.owner.pid.Load() }
func OwnerHeld(s *Store) bool  { return s.owner.held.Load() }

var ErrOwnerLost = errOwnerLost
