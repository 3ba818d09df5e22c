package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/schemas"
)

// Conversation implements engine.Store, reading everything in one round
// trip inside one read-only snapshot.
func (s *Store) Conversation(ctx context.Context, id string) (engine.ConversationRecord, bool, error) {
	var r engine.ConversationRecord
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return r, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var state []byte
	var contact []byte
	b := &pgx.Batch{}
	b.Queue(`SELECT c.state, p.state FROM conversations c LEFT JOIN contacts p ON p.id = c.contact_id WHERE c.id = $1`, id).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&state, &contact)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
	b.Queue(`SELECT at, sender, body, status, event_id, wa_id FROM messages WHERE conversation_id = $1 ORDER BY seq`, id).
		Query(func(rows pgx.Rows) error {
			var err error
			r.Messages, err = scanMessages(rows)
			return err
		})
	b.Queue(`SELECT record FROM decisions WHERE conversation_id = $1 ORDER BY seq`, id).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			var d schemas.Decision
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decision: %w", err)
			}
			r.Decisions = append(r.Decisions, d)
		}
		return rows.Err()
	})
	b.Queue(outboxColumns+` FROM outbox WHERE conversation_id = $1 ORDER BY id`, id).Query(func(rows pgx.Rows) error {
		items, err := scanItems(rows)
		for _, it := range items {
			r.Deliveries = append(r.Deliveries, it.Delivery())
		}
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return r, false, err
	}
	if state == nil {
		return engine.ConversationRecord{}, false, nil
	}
	c, err := engine.UnmarshalConv(state)
	if err != nil {
		return r, false, err
	}
	r.Conversation, r.Notes = c.Conversation, c.Notes
	if contact != nil {
		if err := json.Unmarshal(contact, &r.Contact); err != nil {
			return r, false, fmt.Errorf("contact: %w", err)
		}
	}
	if r.Deliveries == nil {
		r.Deliveries = []schemas.Delivery{}
	}
	return r, true, nil
}

func scanMessages(rows pgx.Rows) ([]schemas.Message, error) {
	var out []schemas.Message
	for rows.Next() {
		var m schemas.Message
		if err := rows.Scan(&m.At, &m.From, &m.Text, &m.Status, &m.Event, &m.ID); err != nil {
			return nil, err
		}
		m.At = m.At.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Conversations implements engine.Store.
func (s *Store) Conversations(ctx context.Context, f engine.ConversationFilter) ([]schemas.Conversation, error) {
	out := []schemas.Conversation{}
	agentView := f.Teams != nil
	teams := f.Teams
	if teams == nil {
		teams = []string{}
	}
	err := queryRows(ctx, s.pool, `SELECT state FROM conversations
		WHERE state IS NOT NULL AND ($1 = '' OR status = $1) AND ($2 = '' OR team = $2) AND ($3 = '' OR assignee = $3)
			AND (NOT $4 OR ($5 <> '' AND assignee = $5) OR (assignee = '' AND team = ANY($6))) AND id > $7
		ORDER BY id LIMIT CASE WHEN $8::int > 0 THEN $8::int END`, []any{f.Status, f.Team, f.Assignee, agentView, f.Agent, teams, f.After, f.Limit}, func(rows pgx.Rows) error {
		var state []byte
		if err := rows.Scan(&state); err != nil {
			return err
		}
		c, err := engine.UnmarshalConv(state)
		if err != nil {
			return err
		}
		out = append(out, c.Conversation)
		return nil
	})
	return out, err
}

// Messages implements engine.Store.
func (s *Store) Messages(ctx context.Context, conv string) ([]schemas.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, sender, body, status, event_id, wa_id FROM messages WHERE conversation_id = $1 ORDER BY seq`, conv)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanMessages(rows)
}

// Contact implements engine.Store.
func (s *Store) Contact(ctx context.Context, id string) (schemas.Contact, bool, error) {
	var state []byte
	err := s.pool.QueryRow(ctx, `SELECT state FROM contacts WHERE id = $1`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return schemas.Contact{}, false, nil
	}
	if err != nil {
		return schemas.Contact{}, false, err
	}
	var c schemas.Contact
	return c, true, json.Unmarshal(state, &c)
}

// QueueLengths implements engine.Store.
func (s *Store) QueueLengths(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := queryRows(ctx, s.pool, `SELECT team, count(*) FROM queue_entries GROUP BY team`, nil, func(rows pgx.Rows) error {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		out[name] = n
		return nil
	})
	return out, err
}

const outboxColumns = `SELECT id, conversation_id, order_key, key, kind, contact_id, params, decided_at, asked_by,
	result, attempts, due_at, error, done_at`

func scanItems(rows pgx.Rows) ([]engine.OutboxItem, error) {
	var out []engine.OutboxItem
	for rows.Next() {
		var it engine.OutboxItem
		var params []byte
		var done pgtype.Timestamptz
		if err := rows.Scan(&it.ID, &it.Conversation, &it.Order, &it.Key, &it.Kind, &it.Contact, &params, &it.At, &it.AskedBy,
			&it.Result, &it.Attempts, &it.Due, &it.Error, &done); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(params, &it.Params); err != nil {
			return nil, fmt.Errorf("outbound item %d: %w", it.ID, err)
		}
		it.At, it.Due, it.Done = it.At.UTC(), it.Due.UTC(), done.Time.UTC()
		if !done.Valid {
			it.Done = time.Time{}
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// reapEvery is how often Claim looks for leases of stores that are gone.
const reapEvery = 2 * time.Second

// Claim implements engine.Store: the oldest pending item of each order
// key, when nothing before it of the same key is pending (delivered or
// dead ones no longer hold it up), due, and not leased, oldest first;
// rows another dispatcher is claiming at this moment are skipped, never
// waited for. Items leased by a store that is gone (see owner) count as
// not leased: every reapEvery, and at a store's first claim, their
// leases are released.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]engine.OutboxItem, error) {
	if !s.owner.held.Load() {
		return nil, fmt.Errorf("claim: %w", errOwnerLost)
	}
	if last := s.reapedAt.Load(); time.Since(time.Unix(0, last)) >= reapEvery && s.reapedAt.CompareAndSwap(last, time.Now().UnixNano()) {
		if n, err := s.reap(ctx, now); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		} else if n > 0 {
			s.owner.log.Info("released the outbox leases of a daemon that is gone", "items", n)
		}
	}
	rows, err := s.outbox.Query(ctx, `WITH c AS (
			SELECT o.id FROM outbox o
			WHERE o.result = 'pending' AND o.due_at <= $1 AND (o.leased_until IS NULL OR o.leased_until <= $1)
				-- First of its key: one probe of outbox_order per candidate,
				-- whatever the planner thinks of the table's size (a NOT
				-- EXISTS became a quadratic join on stale statistics).
				AND o.id = (SELECT min(p.id) FROM outbox p WHERE p.order_key = o.order_key AND p.result = 'pending')
			-- Oldest first, along outbox_pending: no sort of every
			-- pending item.
			ORDER BY o.id
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE outbox o SET leased_until = $3, leased_by = $4, attempts = o.attempts + 1 FROM c WHERE o.id = c.id
		RETURNING o.id, o.conversation_id, o.order_key, o.key, o.kind, o.contact_id, o.params, o.decided_at, o.asked_by,
			o.result, o.attempts, o.due_at, o.error, o.done_at`, now, limit, now.Add(lease), s.owner.key)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer rows.Close()
	items, err := scanItems(rows)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	sortItems(items)
	return items, nil
}

// reap releases the leases, current at now, of stores whose owner lock no
// session holds: their daemon was killed, or lost its database for good.
// It returns how many it released. An attempt such a daemon may still
// finish is fenced out by the attempt number, as after a lease runs out.
func (s *Store) reap(ctx context.Context, now time.Time) (int64, error) {
	// The try-locks run once per distinct owner (an InitPlan); each one
	// taken is held until this statement's transaction ends, so two
	// stores never release the same owner's leases at once, and a store
	// taking its lock again waits for this to commit.
	tag, err := s.outbox.Exec(ctx, `UPDATE outbox SET leased_until = NULL, leased_by = NULL
		WHERE result = 'pending' AND leased_until > $1 AND leased_by = ANY(ARRAY(
			SELECT d.k FROM (SELECT DISTINCT leased_by AS k FROM outbox
				WHERE result = 'pending' AND leased_until > $1 AND leased_by <> $2) AS d
			WHERE pg_try_advisory_xact_lock(d.k)))`, now, s.owner.key)
	if err != nil {
		return 0, fmt.Errorf("release the leases of stores that are gone: %w", err)
	}
	return tag.RowsAffected(), nil
}

func sortItems(items []engine.OutboxItem) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && (items[j].Due.Before(items[j-1].Due) || (items[j].Due.Equal(items[j-1].Due) && items[j].ID < items[j-1].ID)); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// Delivered implements engine.Store. The message it sent is added with
// the result; a status Meta reported before this applies to it now.
func (s *Store) Delivered(ctx context.Context, item engine.OutboxItem, at time.Time, sent *schemas.Message) error {
	return s.finish(ctx, result{item: item, outcome: schemas.DeliveryDelivered, at: at, sent: sent})
}

// Retry implements engine.Store.
func (s *Store) Retry(ctx context.Context, item engine.OutboxItem, due time.Time, cause string) error {
	return s.finish(ctx, result{item: item, outcome: schemas.DeliveryPending, at: due, cause: cause})
}

// Dead implements engine.Store.
func (s *Store) Dead(ctx context.Context, item engine.OutboxItem, at time.Time, cause string) error {
	return s.finish(ctx, result{item: item, outcome: schemas.DeliveryDead, at: at, cause: cause})
}

// Outbound implements engine.Store. NextDue looks only at the items
// first in line of their order key: the ones behind wait for them, so
// their due times would only wake the dispatcher for nothing.
func (s *Store) Outbound(ctx context.Context) (engine.OutboundStats, error) {
	var st engine.OutboundStats
	var next pgtype.Timestamptz
	err := s.outbox.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM outbox WHERE result = 'pending'),
			(SELECT count(*) FROM outbox WHERE result = 'dead'),
			(SELECT min(GREATEST(h.due_at, COALESCE(h.leased_until, h.due_at))) FROM (
				SELECT DISTINCT ON (order_key) due_at, leased_until FROM outbox
				WHERE result = 'pending' ORDER BY order_key, id) h)`).
		Scan(&st.Pending, &st.Dead, &next)
	if next.Valid {
		st.NextDue = next.Time.UTC()
	}
	return st, err
}

// DeadItems implements engine.Store.
func (s *Store) DeadItems(ctx context.Context, limit int) ([]engine.OutboxItem, error) {
	rows, err := s.pool.Query(ctx, outboxColumns+` FROM outbox WHERE result = 'dead' ORDER BY done_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items, err := scanItems(rows)
	if items == nil {
		items = []engine.OutboxItem{}
	}
	return items, err
}

// Statuses implements engine.Store.
func (s *Store) Statuses(ctx context.Context, updates []engine.StatusUpdate) ([]engine.StatusUpdate, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	var fresh []engine.StatusUpdate
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fresh = fresh[:0]
		var keys, convs, ids, sts []string
		byKey := map[string]engine.StatusUpdate{}
		for _, u := range updates {
			if _, dup := byKey[u.Key]; !dup {
				keys, convs, ids, sts = append(keys, u.Key), append(convs, u.Conversation), append(ids, u.MessageID), append(sts, u.Status)
				byKey[u.Key] = u
			}
		}
		inserted := map[string]bool{}
		err := queryRows(ctx, tx, `INSERT INTO statuses (key, conversation_id, wa_id, status)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1
			ON CONFLICT (key) DO NOTHING RETURNING key`, []any{keys, convs, ids, sts}, func(rows pgx.Rows) error {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			inserted[k] = true
			return nil
		})
		if err != nil || len(inserted) == 0 {
			return err
		}
		for _, k := range keys { // in the order given
			if inserted[k] {
				fresh = append(fresh, byKey[k])
			}
		}
		// One UPDATE can change a row once: the furthest status of each
		// message goes in.
		best := map[string]string{}
		for _, u := range fresh {
			if engine.StatusRank[u.Status] > engine.StatusRank[best[u.MessageID]] {
				best[u.MessageID] = u.Status
			}
		}
		var bestIDs, bestSts []string
		for id, st := range best {
			bestIDs, bestSts = append(bestIDs, id), append(bestSts, st)
		}
		convOf := map[string]string{}
		err = queryRows(ctx, tx, `UPDATE messages m SET status = v.status
			FROM unnest($1::text[], $2::text[]) AS v(wa_id, status)
			WHERE m.wa_id = v.wa_id AND m.wa_id = ANY($1) AND m.wa_id <> ''
				AND coalesce(array_position(ARRAY['sent', 'delivered', 'read', 'failed'], v.status), 0)
					> coalesce(array_position(ARRAY['sent', 'delivered', 'read', 'failed'], m.status), 0)
			RETURNING m.wa_id, m.conversation_id`, []any{bestIDs, bestSts}, func(rows pgx.Rows) error {
			var id, conv string
			if err := rows.Scan(&id, &conv); err != nil {
				return err
			}
			convOf[id] = conv
			return nil
		})
		if err != nil {
			return err
		}
		// Statuses that moved nothing still name their conversation.
		var missing []string
		for _, u := range fresh {
			if _, ok := convOf[u.MessageID]; !ok && u.MessageID != "" {
				missing = append(missing, u.MessageID)
			}
		}
		if len(missing) > 0 {
			err = queryRows(ctx, tx, `SELECT wa_id, conversation_id FROM messages WHERE wa_id = ANY($1) AND wa_id <> ''`, []any{missing}, func(rows pgx.Rows) error {
				var id, conv string
				if err := rows.Scan(&id, &conv); err != nil {
					return err
				}
				convOf[id] = conv
				return nil
			})
		}
		for i := range fresh {
			if c, ok := convOf[fresh[i].MessageID]; ok {
				fresh[i].Conversation = c
			}
		}
		return err
	})
	return fresh, err
}
