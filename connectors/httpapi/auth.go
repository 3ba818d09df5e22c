package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/triage-dev/triage/schemas"
)

// permission is something a role may do through the API.
type permission int

const (
	// canReadConversations lets a caller read conversations: every one
	// for supervisors and admins, an agent's own and its teams' waiting
	// ones for agents.
	canReadConversations permission = iota
	// canPostEvents lets a caller post normalized events.
	canPostEvents
	// canReadRules lets a caller read the rule set status.
	canReadRules
	// canReload lets a caller reload the rules.
	canReload
	// canReadOutbound lets a caller list outbound work given up: it
	// names every conversation's customers, so it is for those who read
	// every conversation.
	canReadOutbound
)

// grants is the table of spec section 11, as far as this API goes.
var grants = map[string][]permission{
	RoleAgent:      {canReadConversations},
	RoleSupervisor: {canReadConversations, canReadRules, canReadOutbound},
	RoleAdmin:      {canReadConversations, canReadRules, canReload, canPostEvents, canReadOutbound},
	RoleService:    {canPostEvents},
}

// may reports whether the caller's role grants perm.
func (p *principal) may(perm permission) bool {
	return slices.Contains(grants[p.role], perm)
}

// seesAll reports whether the caller reads every conversation.
func (p *principal) seesAll() bool {
	return p.role == RoleSupervisor || p.role == RoleAdmin
}

// canRead reports whether the caller may read conversation c: supervisors
// and admins any; an agent one assigned to it, or waiting (unassigned) in
// one of its teams.
func (p *principal) canRead(c *schemas.Conversation) bool {
	switch {
	case p.seesAll():
		return true
	case p.role != RoleAgent:
		return false
	case c.Assignee != "":
		return c.Assignee == p.agent
	default:
		return c.Team != "" && slices.Contains(p.teams, c.Team)
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" header,
// or "" when there is none.
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate finds the access entry of token. Every entry is compared,
// in constant time over the tokens' SHA-256, so neither the time taken nor
// its dependence on lengths tells an attacker how close a guess came.
func (s *Server) authenticate(token string) *principal {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &s.tokens[found]
}

// authorize wraps h: a missing or unknown bearer token answers 401 with
// WWW-Authenticate, a known one whose role lacks perm answers 403; then h
// runs with the caller.
func (s *Server) authorize(perm permission, h func(http.ResponseWriter, *http.Request, *principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="triage"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
			return
		}
		p := s.authenticate(token)
		if p == nil {
			s.log.Warn("http: unknown bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="triage", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unknown bearer token")
			return
		}
		if !p.may(perm) {
			s.log.Info("http: call refused", "method", r.Method, "path", r.URL.Path, "access", p.name, "role", p.role)
			writeError(w, http.StatusForbidden, "role "+p.role+" may not "+r.Method+" "+r.URL.Path)
			return
		}
		h(w, r, p)
	})
}
