package server

import "github.com/triage-dev/triage/schemas"

// ShardOf exposes the shard an event goes to, for tests that need two
// conversations on different shards.
func (s *Server) ShardOf(ev schemas.Event) int { return s.shardOf(&ev) }
