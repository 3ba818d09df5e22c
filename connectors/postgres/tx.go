package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/schemas"
)

// Begin implements engine.Store. In one round trip it begins the
// transaction, creates the rows of conversations that do not exist yet
// (so that there is a row to lock: a concurrent unit creating the same
// one waits for this one), locks every named conversation in id order (so
// units never wait for each other in a cycle), loads them and their
// contacts, and inserts the events, whose conflicts tell the duplicates.
// A unit is two round trips in all: this one, and Commit's.
func (s *Store) Begin(ctx context.Context, convs []string, events []schemas.Event) (engine.Tx, error) {
	ids := engine.LockOrder(convs)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	u := newUnit(s, conn)
	b := &pgx.Batch{}
	b.Queue("begin")
	var contactIDs []string
	for _, ev := range events {
		if ev.Contact != nil && ev.Contact.ID != "" {
			contactIDs = append(contactIDs, ev.Contact.ID)
			u.looked[ev.Contact.ID] = true
		}
	}
	if len(ids) > 0 {
		b.Queue(`INSERT INTO conversations (id) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (id) DO NOTHING`, ids)
		b.Queue(`SELECT id, state, contact_id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids).Query(func(rows pgx.Rows) error {
			return u.scanConversations(rows)
		})
		// Two indexed lookups: with OR between them the planner scans.
		if len(contactIDs) > 0 {
			b.Queue(`SELECT id, state FROM contacts WHERE id = ANY($1)`, contactIDs).Query(func(rows pgx.Rows) error { return u.scanContacts(rows) })
		}
		b.Queue(`SELECT id, state FROM contacts WHERE id = ANY(ARRAY(SELECT contact_id FROM conversations WHERE id = ANY($1)))`, ids).
			Query(func(rows pgx.Rows) error { return u.scanContacts(rows) })
	}
	evs := uniqueEvents(events)
	if len(evs) > 0 {
		var eids, econvs, etypes, payloads []string
		var ats []time.Time
		for _, ev := range evs {
			p, err := json.Marshal(ev)
			if err != nil {
				conn.Release()
				return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
			}
			eids, econvs, etypes = append(eids, ev.ID), append(econvs, ev.Conversation), append(etypes, ev.Type)
			ats, payloads = append(ats, ev.At), append(payloads, string(p))
		}
		for _, id := range eids {
			u.pre[id] = true // seen, unless the insert below says otherwise
		}
		b.Queue(`INSERT INTO events (id, conversation_id, type, at, payload)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) ORDER BY 1
			ON CONFLICT (id) DO NOTHING RETURNING id`, eids, econvs, etypes, ats, payloads).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				u.pre[id] = false
			}
			return rows.Err()
		})
	}
	for _, id := range ids {
		u.held[id] = true
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_ = u.Rollback(ctx)
		return nil, fmt.Errorf("lock conversations: %w", err)
	}
	return u, nil
}

// uniqueEvents keeps the first event of each id: a later one in the same
// unit is a duplicate of it.
func uniqueEvents(events []schemas.Event) []schemas.Event {
	seen := make(map[string]bool, len(events))
	out := make([]schemas.Event, 0, len(events))
	for _, ev := range events {
		if !seen[ev.ID] {
			seen[ev.ID] = true
			out = append(out, ev)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// BeginDue implements engine.Store.
func (s *Store) BeginDue(ctx context.Context, now time.Time, limit int) (engine.Tx, []string, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	u := newUnit(s, conn)
	var ids []string
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(`SELECT id, state FROM conversations WHERE next_sla_at <= $1
		ORDER BY next_sla_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var state []byte
			if err := rows.Scan(&id, &state); err != nil {
				return err
			}
			ids = append(ids, id)
			u.raw[id] = state
			u.held[id] = true
		}
		return rows.Err()
	})
	err = conn.SendBatch(ctx, b).Close()
	if err != nil || len(ids) == 0 {
		_ = u.Rollback(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("claim due conversations: %w", err)
		}
		return nil, nil, nil
	}
	return u, ids, nil
}

// NextDeadline implements engine.Store.
func (s *Store) NextDeadline(ctx context.Context) (time.Time, bool, error) {
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, `SELECT min(next_sla_at) FROM conversations`).Scan(&at); err != nil {
		return time.Time{}, false, err
	}
	return at.Time, at.Valid, nil
}

// unit is a Store unit of work: a transaction on a connection of its
// own, what it loaded, and what it will write at Commit in one round
// trip.
type unit struct {
	s    *Store
	conn *pgxpool.Conn     // in the unit's transaction
	held map[string]bool   // conversations locked by this unit
	raw  map[string][]byte // states loaded, not yet decoded (nil: no state yet)
	conv map[string]*engine.Conv
	// contacts loaded or made; people those handed out, to write back
	contacts map[string]schemas.Contact
	people   map[string]*schemas.Contact
	looked   map[string]bool // contacts Begin looked for: one not in contacts is new
	pre      map[string]bool // events inserted by Begin: seen before?
	asked    map[string]bool // ids Seen answered
	checked  map[string]bool // ids Seen looked up itself: new ones are inserted at commit
	made     map[string]*schemas.Event
	shared   *engine.Shared
	peek     *engine.Shared
	before   []engine.AgentState // the shared state as loaded
	teams    []engine.TeamState
	records  []engine.Record
	done     bool
}

func newUnit(s *Store, conn *pgxpool.Conn) *unit {
	return &unit{s: s, conn: conn, held: map[string]bool{}, raw: map[string][]byte{}, conv: map[string]*engine.Conv{},
		contacts: map[string]schemas.Contact{}, people: map[string]*schemas.Contact{}, looked: map[string]bool{},
		pre: map[string]bool{}, asked: map[string]bool{}, checked: map[string]bool{}, made: map[string]*schemas.Event{}}
}

func (u *unit) scanConversations(rows pgx.Rows) error {
	for rows.Next() {
		var id, contact string
		var state []byte
		if err := rows.Scan(&id, &state, &contact); err != nil {
			return err
		}
		u.raw[id] = state
		if contact != "" {
			u.looked[contact] = true
		}
	}
	return rows.Err()
}

func (u *unit) scanContacts(rows pgx.Rows) error {
	for rows.Next() {
		var id string
		var state []byte
		if err := rows.Scan(&id, &state); err != nil {
			return err
		}
		var c schemas.Contact
		if err := json.Unmarshal(state, &c); err != nil {
			return fmt.Errorf("contact %s: %w", id, err)
		}
		u.contacts[id] = c
	}
	return rows.Err()
}

var errDone = errors.New("unit of work already ended")

// ctx is the context of State calls, which take none: a unit's work is
// bounded by its transaction, which the caller's Commit or Rollback ends.
func (u *unit) ctx() context.Context { return context.Background() }

// Seen implements engine.State.
func (u *unit) Seen(id string) (bool, error) {
	if u.done {
		return false, errDone
	}
	if u.asked[id] {
		return true, nil
	}
	u.asked[id] = true
	if dup, ok := u.pre[id]; ok {
		return dup, nil
	}
	// An event triage made itself (an SLA deadline): inserted at commit,
	// with its decision.
	var dup bool
	if err := u.conn.QueryRow(u.ctx(), `SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)`, id).Scan(&dup); err != nil {
		return false, err
	}
	u.checked[id] = !dup
	return dup, nil
}

// Conversation implements engine.State.
func (u *unit) Conversation(id string) (*engine.Conv, error) {
	if u.done {
		return nil, errDone
	}
	if c := u.conv[id]; c != nil {
		return c, nil
	}
	if !u.held[id] {
		return nil, fmt.Errorf("conversation %s is not held by this unit of work", id)
	}
	state := u.raw[id]
	if state == nil {
		return nil, nil
	}
	c, err := engine.UnmarshalConv(state)
	if err != nil {
		return nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	u.conv[id] = c
	return c, nil
}

// AddConversation implements engine.State.
func (u *unit) AddConversation(c *engine.Conv) error {
	if u.done {
		return errDone
	}
	if !u.held[c.ID] {
		return fmt.Errorf("conversation %s is not held by this unit of work", c.ID)
	}
	u.conv[c.ID] = c
	return nil
}

// Contact implements engine.State.
func (u *unit) Contact(id string) (*schemas.Contact, error) {
	if u.done {
		return nil, errDone
	}
	if c := u.people[id]; c != nil {
		return c, nil
	}
	c, ok := u.contacts[id]
	if !ok && u.looked[id] {
		c, ok = schemas.Contact{ID: id}, true // new: Begin found no row
	} else if !ok {
		var state []byte
		err := u.conn.QueryRow(u.ctx(), `SELECT state FROM contacts WHERE id = $1`, id).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			c = schemas.Contact{ID: id}
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(state, &c); err != nil {
				return nil, fmt.Errorf("contact %s: %w", id, err)
			}
		}
	}
	u.people[id] = &c
	return &c, nil
}

// Shared implements engine.State: the transaction-scoped advisory lock,
// then every agent, team and queue entry, in one round trip.
func (u *unit) Shared() (*engine.Shared, error) {
	if u.done {
		return nil, errDone
	}
	if u.shared != nil {
		return u.shared, nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, u.s.sharedKey)
	sh, queueRows := u.queueSharedReads(b)
	queues := map[string][]engine.QueueEntry{}
	// A queue's requests come from a rule set's few assign actions, so
	// most are the same bytes: each is decoded once per read of the
	// queue, which is the cost of an assignment that grows with it.
	decoded := map[string]engine.QueueEntry{} // its Request, by the request's bytes
	b.Queue(`SELECT team, conversation_id, since, request FROM queue_entries ORDER BY team, seq`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var team string
			var e engine.QueueEntry
			var req []byte
			if err := rows.Scan(&team, &e.Conversation, &e.Since, &req); err != nil {
				return err
			}
			d, ok := decoded[string(req)]
			if !ok {
				if err := json.Unmarshal(req, &d.Request); err != nil {
					return fmt.Errorf("queue entry of %s: %w", e.Conversation, err)
				}
				decoded[string(req)] = d
			}
			e.Request = d.Request
			e.Request.Skills = slices.Clone(d.Request.Skills) // each entry its own
			e.Since = e.Since.UTC()
			queues[team] = append(queues[team], e)
		}
		return rows.Err()
	})
	if err := u.conn.SendBatch(u.ctx(), b).Close(); err != nil {
		return nil, fmt.Errorf("shared state: %w", err)
	}
	for name, q := range queues {
		t := queueRows[name]
		t.Name, t.Queue = name, q
		queueRows[name] = t
	}
	for _, t := range queueRows {
		sh.PutTeam(t)
	}
	u.shared, u.before, u.teams = sh, sh.Agents(), sh.Teams()
	return sh, nil
}

// queueSharedReads queues the reads of agents and teams into b; the teams
// land in the map once b ran.
func (u *unit) queueSharedReads(b *pgx.Batch) (*engine.Shared, map[string]engine.TeamState) {
	sh := engine.NewShared()
	teams := map[string]engine.TeamState{}
	b.Queue(`SELECT id, status, open FROM agents`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a engine.AgentState
			if err := rows.Scan(&a.ID, &a.Status, &a.Open); err != nil {
				return err
			}
			sh.PutAgent(a)
		}
		return rows.Err()
	})
	b.Queue(`SELECT name, last_given FROM teams`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var t engine.TeamState
			if err := rows.Scan(&t.Name, &t.LastGiven); err != nil {
				return err
			}
			teams[t.Name] = t
		}
		return rows.Err()
	})
	return sh, teams
}

// Peek implements engine.State: agents and teams as last committed, read
// without the lock and without the queues.
func (u *unit) Peek() (*engine.Shared, error) {
	if u.done {
		return nil, errDone
	}
	if u.shared != nil {
		return u.shared, nil
	}
	if u.peek != nil {
		return u.peek, nil
	}
	b := &pgx.Batch{}
	sh, teams := u.queueSharedReads(b)
	if err := u.conn.SendBatch(u.ctx(), b).Close(); err != nil {
		return nil, fmt.Errorf("shared state: %w", err)
	}
	for _, t := range teams {
		sh.PutTeam(t)
	}
	u.peek = sh
	return sh, nil
}

// Queued implements engine.State: a waiting conversation another unit
// holds is skipped, never waited for.
func (u *unit) Queued(id string) (*engine.Conv, error) {
	if u.done {
		return nil, errDone
	}
	if !u.held[id] {
		var state []byte
		err := u.conn.QueryRow(u.ctx(), `SELECT state FROM conversations WHERE id = $1 FOR UPDATE SKIP LOCKED`, id).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var exists bool
			if err := u.conn.QueryRow(u.ctx(), `SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1)`, id).Scan(&exists); err != nil {
				return nil, err
			}
			if exists {
				return nil, nil // held by another unit
			}
		case err != nil:
			return nil, err
		default:
			u.held[id] = true
			u.raw[id] = state
		}
	}
	c, err := u.Conversation(id)
	if c == nil && err == nil {
		// Unknown: resolved, so the queue lets go of it.
		c = engine.NewConv(id, time.Time{})
		c.Status = schemas.StatusResolved
	}
	return c, err
}

// Record implements engine.Tx.
func (u *unit) Record(r engine.Record) error {
	if u.done {
		return errDone
	}
	u.records = append(u.records, r)
	return nil
}

// Commit implements engine.Tx: every write of the unit and COMMIT, in
// one round trip.
func (u *unit) Commit(ctx context.Context) error {
	if u.done {
		return errDone
	}
	b := &pgx.Batch{}
	if err := u.queueWrites(b); err != nil {
		_ = u.Rollback(ctx)
		return err
	}
	b.Queue("commit")
	if err := u.conn.SendBatch(ctx, b).Close(); err != nil {
		_ = u.Rollback(ctx)
		return fmt.Errorf("commit: %w", err)
	}
	if st := u.conn.Conn().PgConn().TxStatus(); st != 'I' {
		// Not committed, though no statement said so (a transaction
		// already aborted answers COMMIT with ROLLBACK).
		_ = u.Rollback(ctx)
		return fmt.Errorf("commit: the transaction was rolled back (status %c)", st)
	}
	u.done = true
	u.conn.Release()
	return nil
}

// Rollback implements engine.Tx.
func (u *unit) Rollback(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	defer u.conn.Release() // a connection still in a transaction is closed, not reused
	if u.conn.Conn().PgConn().TxStatus() == 'I' {
		return nil
	}
	_, err := u.conn.Exec(context.WithoutCancel(ctx), "rollback")
	return err
}

func (u *unit) queueWrites(b *pgx.Batch) error {
	if len(u.conv) > 0 {
		var ids, states, statuses, teams, assignees, contacts []string
		var next []pgtype.Timestamptz
		for _, id := range slices.Sorted(maps.Keys(u.conv)) {
			c := u.conv[id]
			state, err := engine.MarshalConv(c)
			if err != nil {
				return fmt.Errorf("encode conversation %s: %w", id, err)
			}
			at, ok := c.NextDeadline()
			ids, states = append(ids, id), append(states, string(state))
			statuses, teams, assignees = append(statuses, c.Status), append(teams, c.Team), append(assignees, c.Assignee)
			contacts, next = append(contacts, c.Contact), append(next, pgtype.Timestamptz{Time: at, Valid: ok})
		}
		// Rows exist: Begin (or Queued) locked each.
		b.Queue(`UPDATE conversations c SET state = v.state, status = v.status, team = v.team, assignee = v.assignee,
				contact_id = v.contact, next_sla_at = v.next, updated_at = now()
			FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
				AS v(id, state, status, team, assignee, contact, next)
			WHERE c.id = v.id AND c.id = ANY($1)`, ids, states, statuses, teams, assignees, contacts, next)
	}
	if len(u.people) > 0 {
		var ids, states, changes []string
		for _, id := range slices.Sorted(maps.Keys(u.people)) {
			c := u.people[id]
			old, existed := u.contacts[id]
			diff := engine.ContactChanges(old, *c)
			if existed && len(diff) == 0 {
				continue
			}
			state, err := json.Marshal(c)
			if err != nil {
				return err
			}
			change, err := json.Marshal(diff)
			if err != nil {
				return err
			}
			ids, states, changes = append(ids, id), append(states, string(state)), append(changes, string(change))
		}
		if len(ids) > 0 {
			// Contacts are not locked for a unit: only the fields this unit
			// changed are merged in, so an opt-out committed meanwhile by
			// another unit stays. Sorted: units writing the same contacts
			// lock their rows in one order.
			b.Queue(`INSERT INTO contacts (id, state) SELECT i, s FROM unnest($1::text[], $2::jsonb[]) AS v(i, s) ORDER BY 1
				ON CONFLICT (id) DO UPDATE SET state = contacts.state || (
					SELECT c FROM unnest($1::text[], $3::jsonb[]) AS w(i, c) WHERE w.i = excluded.id)`, ids, states, changes)
		}
	}
	if u.shared != nil {
		u.queueShared(b)
	}
	return u.queueRecords(b)
}

func (u *unit) queueShared(b *pgx.Batch) {
	var ids, statuses []string
	var open []int32
	for _, a := range u.shared.Agents() {
		if i, ok := slices.BinarySearchFunc(u.before, a.ID, func(x engine.AgentState, id string) int { return cmp.Compare(x.ID, id) }); ok && u.before[i] == a {
			continue
		}
		ids, statuses, open = append(ids, a.ID), append(statuses, a.Status), append(open, int32(a.Open))
	}
	if len(ids) > 0 {
		b.Queue(`INSERT INTO agents (id, status, open) SELECT * FROM unnest($1::text[], $2::text[], $3::int4[])
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, open = excluded.open`, ids, statuses, open)
	}
	var names, last []string
	var gone, addConv, addTeam, addReq, updConv, updReq []string
	var addSince []time.Time
	before := map[string]engine.TeamState{}
	for _, t := range u.teams {
		before[t.Name] = t
	}
	for _, t := range u.shared.Teams() {
		old, had := before[t.Name]
		if !had || old.LastGiven != t.LastGiven {
			names, last = append(names, t.Name), append(last, t.LastGiven)
		}
		// The queue as a diff: entries that left, entries that came (in
		// queue order, so their seq keeps it), requests that changed (in
		// place: the entry keeps its turn).
		was := map[string]engine.QueueEntry{}
		for _, e := range old.Queue {
			was[e.Conversation] = e
		}
		is := map[string]bool{}
		for _, e := range t.Queue {
			is[e.Conversation] = true
			w, ok := was[e.Conversation]
			if ok && reflect.DeepEqual(w, e) {
				continue
			}
			req, _ := json.Marshal(e.Request)
			if ok {
				updConv, updReq = append(updConv, e.Conversation), append(updReq, string(req))
				continue
			}
			addConv, addTeam, addSince, addReq = append(addConv, e.Conversation), append(addTeam, t.Name), append(addSince, e.Since), append(addReq, string(req))
		}
		for _, e := range old.Queue {
			if !is[e.Conversation] {
				gone = append(gone, e.Conversation)
			}
		}
	}
	if len(names) > 0 {
		b.Queue(`INSERT INTO teams (name, last_given) SELECT * FROM unnest($1::text[], $2::text[])
			ON CONFLICT (name) DO UPDATE SET last_given = excluded.last_given`, names, last)
	}
	if len(gone) > 0 {
		b.Queue(`DELETE FROM queue_entries WHERE conversation_id = ANY($1)`, gone)
	}
	if len(updConv) > 0 {
		b.Queue(`UPDATE queue_entries q SET request = v.r FROM unnest($1::text[], $2::jsonb[]) AS v(c, r) WHERE q.conversation_id = v.c AND q.conversation_id = ANY($1)`, updConv, updReq)
	}
	if len(addConv) > 0 {
		b.Queue(`INSERT INTO queue_entries (conversation_id, team, since, request)
			SELECT c, t, s, r FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[]) WITH ORDINALITY AS v(c, t, s, r, n) ORDER BY n`,
			addConv, addTeam, addSince, addReq)
	}
}

func (u *unit) queueRecords(b *pgx.Batch) error {
	var (
		dconv, devent, druleset, drecord                    []string
		sids, sconvs, stypes, spayloads                     []string
		sats                                                []time.Time
		mconv, msender, mbody, mevent                       []string
		mat                                                 []time.Time
		oconv, oorder, okey, okind, ocontact, oparams, oask []string
		oat, odue                                           []time.Time
	)
	var buf []byte
	for _, r := range u.records {
		d := &r.Decision
		var err error
		if buf, err = schemas.AppendDecision(buf[:0], d); err != nil {
			return fmt.Errorf("encode decision of %s: %w", d.Event.ID, err)
		}
		conv := d.Event.Conversation
		dconv, devent, druleset, drecord = append(dconv, conv), append(devent, d.Event.ID), append(druleset, d.RuleSet), append(drecord, string(buf))
		if u.checked[d.Event.ID] {
			u.made[d.Event.ID] = &d.Event
		}
		if m := r.Message; m != nil {
			mconv, mat, msender, mbody, mevent = append(mconv, conv), append(mat, m.At), append(msender, m.From), append(mbody, m.Text), append(mevent, m.Event)
		}
		for _, o := range r.Outbound {
			params, err := json.Marshal(o.Params)
			if err != nil {
				return fmt.Errorf("encode outbound %s: %w", o.Key, err)
			}
			due := o.Due
			if due.IsZero() {
				due = o.At
			}
			oconv, oorder, okey, okind = append(oconv, o.Conversation), append(oorder, o.Order), append(okey, o.Key), append(okind, o.Kind)
			ocontact, oparams, oask = append(ocontact, o.Contact), append(oparams, string(params)), append(oask, o.AskedBy)
			oat, odue = append(oat, o.At), append(odue, due)
		}
	}
	// Every id Seen recorded is kept, with its event when the unit
	// recorded a decision for it.
	for _, id := range slices.Sorted(maps.Keys(u.checked)) {
		if !u.checked[id] {
			continue
		}
		ev := u.made[id]
		if ev == nil {
			ev = &schemas.Event{ID: id}
		}
		p, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		sids, sconvs, stypes, sats, spayloads = append(sids, id), append(sconvs, ev.Conversation), append(stypes, ev.Type), append(sats, ev.At), append(spayloads, string(p))
	}
	if len(sids) > 0 {
		b.Queue(`INSERT INTO events (id, conversation_id, type, at, payload)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) ON CONFLICT (id) DO NOTHING`,
			sids, sconvs, stypes, sats, spayloads)
	}
	// WITH ORDINALITY keeps the order of the records in the identity
	// columns that order a conversation's decisions, messages and outbox.
	if len(dconv) > 0 {
		b.Queue(`INSERT INTO decisions (conversation_id, event_id, ruleset, record)
			SELECT c, e, r, d FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS v(c, e, r, d, n) ORDER BY n`,
			dconv, devent, druleset, drecord)
	}
	if len(mconv) > 0 {
		b.Queue(`INSERT INTO messages (conversation_id, at, sender, body, event_id)
			SELECT c, a, s, t, e FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS v(c, a, s, t, e, n) ORDER BY n`,
			mconv, mat, msender, mbody, mevent)
	}
	if len(okey) > 0 {
		b.Queue(`INSERT INTO outbox (conversation_id, order_key, key, kind, contact_id, params, asked_by, decided_at, due_at)
			SELECT c, o, k, t, p, j, a, d, u
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::timestamptz[], $9::timestamptz[])
				WITH ORDINALITY AS v(c, o, k, t, p, j, a, d, u, n) ORDER BY n
			ON CONFLICT (key) DO NOTHING`, oconv, oorder, okey, okind, ocontact, oparams, oask, oat, odue)
	}
	return nil
}

var _ engine.Tx = (*unit)(nil)
