// Package actions defines what a rule can do when it matches: the Action
// interface, the registry that maps an action's name to a constructor
// validating its params at load time, and the built-in actions.
//
// Actions never reach outside the process. They change the conversation
// through a Context the engine provides and describe outbound work
// (replies, templates, Slack pings, bot questions) as data for the
// engine to hand to connectors after the decision is stored.
package actions

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/triage-dev/triage/schemas"
)

// Action is a configured action, built once when a rule set loads and
// safe for concurrent use: per-event data comes in through Apply.
type Action interface {
	// Apply fires the action. params are the action's parameters with every
	// template rendered against the state at this moment.
	Apply(ctx Context, params map[string]any) Result
}

// Result is what firing an action produced, as the decision records it.
type Result struct {
	Outcome string         // schemas.OutcomeApplied, Queued, Skipped or Failed
	Reason  string         // why it was skipped
	Error   string         // why it failed
	Result  map[string]any // what it did, for example the agent it assigned
}

// Applied, Queued, Skipped and Failed build the common results.
func Applied(result map[string]any) Result {
	return Result{Outcome: schemas.OutcomeApplied, Result: result}
}

// Queued is the result of an action whose effect leaves the process later.
func Queued() Result { return Result{Outcome: schemas.OutcomeQueued} }

// Skipped is the result of an action that chose not to act, with a reason.
func Skipped(reason string) Result { return Result{Outcome: schemas.OutcomeSkipped, Reason: reason} }

// Failed is the result of an action that could not act.
func Failed(err error) Result { return Result{Outcome: schemas.OutcomeFailed, Error: err.Error()} }

// AssignRequest says whom a conversation may go to.
type AssignRequest struct {
	Team     string   // a team name; empty when Agent names the agent
	Agent    string   // a specific agent; empty when Team is set
	Strategy string   // round_robin or least_busy; empty: the team's own
	Skills   []string // the agent must hold every one
	Language string   // the agent must speak it; empty: any
}

// Context is the engine's side of an action firing: the live conversation
// and the operations whose effects reach beyond one conversation's fields.
type Context interface {
	// Conversation returns the conversation being changed. Changes to it are
	// seen by rules evaluated later for the same event.
	Conversation() *schemas.Conversation
	// Contact returns the conversation's contact.
	Contact() *schemas.Contact
	// Escalate hands the conversation to humans.
	Escalate(reason string, tier int)
	// Assign gives the conversation to an eligible agent and returns its id,
	// or "" when none is eligible and the conversation waits in the queue.
	Assign(req AssignRequest) (string, error)
	// Unassign puts the conversation back in its team's queue.
	Unassign()
	// SetStatus changes the status, with the side effects a resolution has.
	SetStatus(status string)
	// Note adds an internal note, never sent to the customer.
	Note(text string)
	// Send queues outbound work of one of the schemas.Outbound kinds.
	Send(kind string, params map[string]any)
}

// Catalog answers the load-time questions an action's constructor may ask
// about the rest of the rule set.
type Catalog interface {
	HasTeam(name string) bool
	HasAgent(id string) bool
}

// Constructor validates an action's params and builds the action. It must
// have no side effects: a rule set that fails to load is thrown away.
type Constructor func(p *Params, cat Catalog) (Action, error)

// Info describes one action type.
type Info struct {
	Name string      // the key used in rule files, e.g. "escalate"
	Doc  string      // one line for `triage check` and the docs
	New  Constructor // validates params and builds the action
}

// Registry maps action names to constructors. The zero value is not
// usable; NewRegistry makes an empty one, so tests can register just what
// they need, and Default holds the built-ins.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Info
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]Info{}} }

// ErrDuplicate is returned when an action name is registered twice.
var ErrDuplicate = errors.New("action already registered")

// Register adds an action type.
func (r *Registry) Register(info Info) error {
	if info.Name == "" || info.New == nil {
		return fmt.Errorf("register action %q: name and constructor are required", info.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[info.Name]; ok {
		return fmt.Errorf("register action %q: %w", info.Name, ErrDuplicate)
	}
	r.m[info.Name] = info
	return nil
}

// MustRegister is Register for init functions: it panics on error, which
// can only be a programming mistake caught by the first test run.
func (r *Registry) MustRegister(info Info) {
	if err := r.Register(info); err != nil {
		panic(err)
	}
}

// Lookup returns the action type registered under name.
func (r *Registry) Lookup(name string) (Info, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	info, ok := r.m[name]
	return info, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Default is the registry rule sets load with unless told otherwise; it
// holds the built-in actions.
var Default = NewRegistry()

func init() { RegisterBuiltins(Default) }
