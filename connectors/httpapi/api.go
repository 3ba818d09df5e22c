package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/triage-dev/triage/schemas"
)

// postEvents takes POST /v1/events: one event object or an array of them,
// decoded strictly. It answers 202 with {"accepted": n}.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, p *principal) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventsBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxEventsBody))
			return
		}
		writeError(w, http.StatusBadRequest, "body unreadable")
		return
	}
	events, err := DecodeEvents(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(events) > 0 {
		if err := s.b.Submit(r.Context(), events, p.name); err != nil {
			if errors.Is(err, ErrInvalid) {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			s.log.Error("http: events not accepted", "access", p.name, "events", len(events), "error", err)
			writeError(w, http.StatusServiceUnavailable, "events not accepted, try again")
			return
		}
	}
	writeJSON(w, http.StatusAccepted, struct {
		Accepted int `json:"accepted"`
	}{len(events)})
}

// DecodeEvents reads the body of POST /v1/events: a JSON event object
// (spec section 4) or an array of them. It is strict: a field the event
// format does not have (compared case-sensitively, at any depth) is an
// error naming every such field, and so are a value of the wrong type and
// anything after the JSON value.
func DecodeEvents(body []byte) ([]schemas.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("empty body: want a JSON event object or an array of events")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("body holds more than one JSON value: send one event object or one array")
	}
	var items []json.RawMessage
	array := false
	switch raw[0] {
	case '{':
		items = []json.RawMessage{raw}
	case '[':
		array = true
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("body is not JSON: %w", err)
		}
	default:
		return nil, errors.New("body must be a JSON event object or an array of events")
	}
	var problems []string
	events := make([]schemas.Event, 0, len(items))
	for i, item := range items {
		where := ""
		if array {
			where = fmt.Sprintf("event %d: ", i)
		}
		if len(item) == 0 || item[0] != '{' {
			problems = append(problems, where+"not a JSON object")
			continue
		}
		if unknown := unknownFields(item, reflect.TypeFor[schemas.Event](), ""); len(unknown) > 0 {
			noun := "unknown field "
			if len(unknown) > 1 {
				noun = "unknown fields "
			}
			problems = append(problems, where+noun+strings.Join(unknown, ", "))
			continue
		}
		var ev schemas.Event
		if err := json.Unmarshal(item, &ev); err != nil {
			problems = append(problems, where+describeJSONError(err))
			continue
		}
		events = append(events, ev)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return events, nil
}

// unknownFields lists, quoted and sorted, the keys of the JSON object raw
// that no field of the struct type t has (with prefix, "contact." and so
// on, for nested objects). Keys must match a field's JSON name exactly,
// where encoding/json would accept any case. Values that are not objects
// are left to the decoder to report.
func unknownFields(raw json.RawMessage, t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	fields := jsonFields(t)
	var out []string
	for key, val := range obj {
		ft, ok := fields[key]
		if !ok {
			out = append(out, fmt.Sprintf("%q", prefix+key))
			continue
		}
		out = append(out, unknownFields(val, ft, prefix+key+".")...)
	}
	sort.Strings(out)
	return out
}

// jsonFields maps the JSON names of t's exported fields, embedded
// structs' included, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, dup := fields[k]; !dup {
						fields[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// describeJSONError says what is wrong with an event that did not decode.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q: want %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// getConversation serves GET /v1/conversations/{id}.
func (s *Server) getConversation(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	view, ok, err := s.b.Conversation(r.Context(), id)
	if err != nil {
		s.internal(r.Context(), w, "read conversation", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no conversation %q", id))
		return
	}
	if !p.canRead(&view.Conversation) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("conversation %q is neither assigned to %s nor waiting in its teams", id, p.agent))
		return
	}
	view.Conversation.Tags = nonNil(view.Conversation.Tags)
	view.Messages = nonNil(view.Messages)
	view.Notes = nonNil(view.Notes)
	view.Decisions = nonNil(view.Decisions)
	view.Deliveries = nonNil(view.Deliveries)
	writeJSON(w, http.StatusOK, view)
}

// ConversationList is the answer of GET /v1/conversations. Next, when
// set, is the after= of the next page.
type ConversationList struct {
	Conversations []ConversationSummary `json:"conversations"`
	Next          string                `json:"next,omitempty"`
}

// MaxConversationPage is how many conversations GET /v1/conversations
// answers with at most, and by default.
const MaxConversationPage = 1000

// listConversations serves
// GET /v1/conversations?status=&team=&assignee=&after=&limit=, in id
// order, a page at a time. An agent sees only the conversations assigned
// to it and those waiting in its teams.
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, p *principal) {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Team: q.Get("team"), Assignee: q.Get("assignee"), After: q.Get("after")}
	if f.Status != "" && !slices.Contains(schemas.Statuses, f.Status) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status %q: want %s", f.Status, strings.Join(schemas.Statuses, ", ")))
		return
	}
	limit := MaxConversationPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxConversationPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", v, MaxConversationPage))
			return
		}
		limit = n
	}
	f.Limit = limit + 1 // one more than the page: is there a next one?
	if !p.seesAll() {
		f.Teams = append([]string{}, p.teams...)
		f.Agent = p.agent
	}
	list, err := s.b.Conversations(r.Context(), f)
	if err != nil {
		s.internal(r.Context(), w, "list conversations", err)
		return
	}
	var next string
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	out := make([]ConversationSummary, 0, len(list))
	for _, c := range list {
		// The Backend narrows an agent's list to its teams; the role
		// table narrows it further to waiting conversations there.
		if p.canRead(&c.Conversation) {
			c.Tags = nonNil(c.Tags)
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, ConversationList{Conversations: out, Next: next})
}

// listDead serves GET /v1/outbound/dead?limit=N (default 100, at most
// 1,000): the outbound items given up, newest first.
func (s *Server) listDead(w http.ResponseWriter, r *http.Request, p *principal) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to 1000", v))
			return
		}
		limit = n
	}
	dead, err := s.b.DeadDeliveries(r.Context(), limit)
	if err != nil {
		s.internal(r.Context(), w, "list dead deliveries", err)
		return
	}
	writeJSON(w, http.StatusOK, DeadList{Dead: nonNil(dead)})
}

// getRules serves GET /v1/rules.
func (s *Server) getRules(w http.ResponseWriter, r *http.Request, p *principal) {
	writeJSON(w, http.StatusOK, s.b.Rules(r.Context()))
}

// ReloadFailure is the answer of a rejected POST /-/reload (422): the
// rule set status, whose version is the set that still runs, with the
// reason in Error.
type ReloadFailure struct {
	Error string `json:"error"`
	RulesStatus
}

// reload serves POST /-/reload: 200 with the new rule set status, or 422
// with the status and its problems when the reload was rejected and the
// old set still runs.
func (s *Server) reload(w http.ResponseWriter, r *http.Request, p *principal) {
	err := s.b.Reload(r.Context())
	st := s.b.Rules(r.Context())
	if err != nil {
		s.log.Warn("http: reload rejected, the previous rule set still runs", "access", p.name, "error", err)
		st.OK = false
		if st.LastError == "" {
			st.LastError = err.Error()
		}
		writeJSON(w, http.StatusUnprocessableEntity, ReloadFailure{Error: err.Error(), RulesStatus: st})
		return
	}
	s.log.Info("http: rules reloaded", "access", p.name, "version", st.Version)
	writeJSON(w, http.StatusOK, st)
}

// internal answers 500 for a Backend failure, logging the cause rather
// than showing it.
func (s *Server) internal(ctx context.Context, w http.ResponseWriter, what string, err error) {
	if ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "request canceled")
		return
	}
	s.log.Error("http: backend failed", "step", what, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

// nonNil turns a nil slice into an empty one, so that it prints as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
