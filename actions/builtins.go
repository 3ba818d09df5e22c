package actions

import (
	"errors"
	"fmt"

	"github.com/triage-dev/triage/schemas"
)

// RegisterBuiltins adds the built-in actions of the contract to r.
func RegisterBuiltins(r *Registry) {
	for _, info := range builtins {
		r.MustRegister(info)
	}
}

var builtins = []Info{
	{Name: "escalate", Doc: "hand the conversation to humans: {reason, tier?}", New: newEscalate},
	{Name: "assign", Doc: "give it to an eligible agent: {team | agent, strategy?, skills?, language?}", New: newAssign},
	{Name: "unassign", Doc: "put it back in its team's queue", New: noParams(unassign{})},
	{Name: "tag", Doc: "add or remove tags: {add?, remove?}", New: newTag},
	{Name: "set_priority", Doc: "set the priority: {priority}", New: enum(setPriority{}, "priority", schemas.Priorities)},
	{Name: "set_status", Doc: "set the status: {status}", New: enum(setStatus{}, "status", schemas.Statuses)},
	{Name: "reply", Doc: "send a WhatsApp text inside the 24 h window: {text}", New: requires(reply{}, "text")},
	{Name: "send_template", Doc: "send a WhatsApp template: {name, language, params?}", New: newSendTemplate},
	{Name: "note", Doc: "add an internal note: {text}", New: requires(note{}, "text")},
	{Name: "notify", Doc: "post to Slack: {slack, text}", New: requires(notify{}, "slack", "text")},
	{Name: "ask_bot", Doc: "ask the bot; its answer comes back as bot.answered", New: noParams(askBot{})},
}

func noParams(a Action) Constructor {
	return func(p *Params, _ Catalog) (Action, error) {
		if err := p.CheckUnknown(); err != nil {
			return nil, err
		}
		return a, nil
	}
}

// requires builds a constructor for an action whose params are all
// required strings.
func requires(a Action, keys ...string) Constructor {
	return func(p *Params, _ Catalog) (Action, error) {
		errs := make([]error, len(keys))
		for i, k := range keys {
			_, _, errs[i] = p.String(k, true)
		}
		if err := collect(p, errs...); err != nil {
			return nil, err
		}
		return a, nil
	}
}

// enum builds a constructor for an action with one required parameter
// taking one of allowed (or a template, checked when it renders).
func enum(a Action, key string, allowed []string) Constructor {
	return func(p *Params, _ Catalog) (Action, error) {
		_, err := p.Enum(key, true, allowed)
		if err := collect(p, err); err != nil {
			return nil, err
		}
		return a, nil
	}
}

// collect runs the accessors' errors together so a rule author sees every
// bad parameter of an action at once.
func collect(p *Params, errs ...error) error {
	errs = append(errs, p.CheckUnknown())
	return errors.Join(errs...)
}

type escalate struct{ tier int }

func newEscalate(p *Params, _ Catalog) (Action, error) {
	_, _, e1 := p.String("reason", true)
	tier, ok, e2 := p.Int("tier")
	if e2 == nil && ok && tier < 1 {
		e2 = &ParamError{Key: "tier", Msg: "must be 1 or more"}
	}
	if err := collect(p, e1, e2); err != nil {
		return nil, err
	}
	return escalate{tier: tier}, nil
}

func (a escalate) Apply(ctx Context, params map[string]any) Result {
	reason := str(params, "reason")
	if reason == "" {
		return Failed(errors.New("reason rendered empty"))
	}
	ctx.Escalate(reason, a.tier)
	if a.tier > 0 {
		return Applied(map[string]any{"tier": a.tier})
	}
	return Applied(nil)
}

type assign struct{ strategy string }

var strategies = []string{"round_robin", "least_busy"}

func newAssign(p *Params, cat Catalog) (Action, error) {
	team, teamDyn, e1 := p.String("team", false)
	agent, agentDyn, e2 := p.String("agent", false)
	strategy, e3 := p.Enum("strategy", false, strategies)
	_, e4 := p.Strings("skills")
	_, _, e5 := p.String("language", false)
	var e6 error
	switch {
	case e1 != nil || e2 != nil:
	case team == "" && agent == "":
		e6 = &ParamError{Msg: "needs team or agent"}
	case team != "" && agent != "":
		e6 = &ParamError{Key: "agent", Msg: "give team or agent, not both"}
	case team != "" && !teamDyn && !cat.HasTeam(team):
		e6 = &ParamError{Key: "team", Msg: fmt.Sprintf("unknown team %q", team)}
	case agent != "" && !agentDyn && !cat.HasAgent(agent):
		e6 = &ParamError{Key: "agent", Msg: fmt.Sprintf("unknown agent %q", agent)}
	}
	if err := collect(p, e1, e2, e3, e4, e5, e6); err != nil {
		return nil, err
	}
	return assign{strategy: strategy}, nil
}

func (a assign) Apply(ctx Context, params map[string]any) Result {
	req := AssignRequest{
		Team:     str(params, "team"),
		Agent:    str(params, "agent"),
		Strategy: str(params, "strategy"),
		Skills:   strs(params, "skills"),
		Language: str(params, "language"),
	}
	if req.Strategy != "" {
		if err := oneOf(req.Strategy, strategies); err != nil {
			return Failed(fmt.Errorf("strategy: %w", err))
		}
	}
	agent, err := ctx.Assign(req)
	if err != nil {
		return Failed(err)
	}
	if agent == "" {
		return Applied(map[string]any{"queued": ctx.Conversation().Team})
	}
	return Applied(map[string]any{"agent": agent})
}

type unassign struct{}

func (unassign) Apply(ctx Context, _ map[string]any) Result {
	if ctx.Conversation().Assignee == "" {
		return Skipped("not_assigned")
	}
	ctx.Unassign()
	return Applied(nil)
}

type tag struct{}

func newTag(p *Params, _ Catalog) (Action, error) {
	add, e1 := p.Strings("add")
	remove, e2 := p.Strings("remove")
	var e3 error
	if e1 == nil && e2 == nil && len(add) == 0 && len(remove) == 0 {
		e3 = &ParamError{Msg: "needs add or remove"}
	}
	if err := collect(p, e1, e2, e3); err != nil {
		return nil, err
	}
	return tag{}, nil
}

func (tag) Apply(ctx Context, params map[string]any) Result {
	c := ctx.Conversation()
	for _, t := range strs(params, "add") {
		if !c.HasTag(t) {
			c.Tags = append(c.Tags, t)
		}
	}
	for _, t := range strs(params, "remove") {
		for i := 0; i < len(c.Tags); i++ {
			if c.Tags[i] == t {
				c.Tags = append(c.Tags[:i:i], c.Tags[i+1:]...)
				i--
			}
		}
	}
	return Applied(nil)
}

type setPriority struct{}

func (setPriority) Apply(ctx Context, params map[string]any) Result {
	pr := str(params, "priority")
	if err := oneOf(pr, schemas.Priorities); err != nil {
		return Failed(fmt.Errorf("priority: %w", err))
	}
	ctx.Conversation().Priority = pr
	return Applied(nil)
}

type setStatus struct{}

func (setStatus) Apply(ctx Context, params map[string]any) Result {
	st := str(params, "status")
	if err := oneOf(st, schemas.Statuses); err != nil {
		return Failed(fmt.Errorf("status: %w", err))
	}
	ctx.SetStatus(st)
	return Applied(nil)
}

type reply struct{}

func (reply) Apply(ctx Context, params map[string]any) Result {
	if !ctx.Conversation().WindowOpen {
		return Skipped("window_closed")
	}
	if str(params, "text") == "" {
		return Failed(errors.New("text rendered empty"))
	}
	ctx.Send(schemas.OutboundReply, params)
	return Queued()
}

type sendTemplate struct{}

func newSendTemplate(p *Params, _ Catalog) (Action, error) {
	_, _, e1 := p.String("name", true)
	_, _, e2 := p.String("language", true)
	_, e3 := p.Strings("params")
	if err := collect(p, e1, e2, e3); err != nil {
		return nil, err
	}
	return sendTemplate{}, nil
}

func (sendTemplate) Apply(ctx Context, params map[string]any) Result {
	if str(params, "name") == "" || str(params, "language") == "" {
		return Failed(errors.New("name and language must not render empty"))
	}
	ctx.Send(schemas.OutboundTemplate, params)
	return Queued()
}

type note struct{}

func (note) Apply(ctx Context, params map[string]any) Result {
	ctx.Note(str(params, "text"))
	return Applied(nil)
}

type notify struct{}

func (notify) Apply(ctx Context, params map[string]any) Result {
	if str(params, "slack") == "" {
		return Failed(errors.New("slack channel rendered empty"))
	}
	ctx.Send(schemas.OutboundNotify, params)
	return Queued()
}

type askBot struct{}

func (askBot) Apply(ctx Context, params map[string]any) Result {
	if ctx.Conversation().Handler == schemas.HandlerHuman {
		return Skipped("handled_by_human")
	}
	ctx.Send(schemas.OutboundAskBot, params)
	return Queued()
}
