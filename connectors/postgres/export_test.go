package postgres

// OwnerPID is the backend that holds s's lease owner lock, OwnerHeld
// whether s holds it now, and OwnerKey the lock's key.
func OwnerPID(s *Store) uint32 { return s.owner.pid.Load() }
func OwnerHeld(s *Store) bool  { return s.owner.held.Load() }
func OwnerKey(s *Store) int64  { return s.owner.key }

var ErrOwnerLost = errOwnerLost
