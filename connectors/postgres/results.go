package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/schemas"
)

// result is one delivery attempt's result waiting to be written.
type result struct {
	item    engine.OutboxItem
	outcome string    // delivered, pending (to retry) or dead
	at      time.Time // when it was delivered or given up; for a retry, when it is due
	cause   string
	sent    *schemas.Message
	done    chan error
}

// maxResults bounds the results written in one statement.
const maxResults = 128

// resultLinger is how long the writer waits, after a result arrives, for
// more to write with it. Each statement is a transaction whose fixed cost
// (BenchmarkServePostgres: more than the rows') PostgreSQL pays on the
// cores the units of work need; the wait delays only the next message to
// the same customer, never an acknowledgement.
const resultLinger = 3 * time.Millisecond

var errClosed = errors.New("store closed")

// finish hands a result to the writer and waits for it to be written.
// Deliveries end in bursts, each with a result to record: written one
// statement each, they cost PostgreSQL more than the units that queued
// them, so the writer takes every result waiting and writes them in one.
func (s *Store) finish(ctx context.Context, r result) error {
	r.done = make(chan error, 1)
	select {
	case s.results <- r:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // written or not, the lease tells
	}
}

// writeResults runs until the store closes.
func (s *Store) writeResults() {
	defer close(s.written)
	batch := make([]result, 0, maxResults)
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.results:
			batch = append(batch[:0], r)
		}
		linger := time.NewTimer(resultLinger)
	more:
		for len(batch) < maxResults {
			select {
			case r := <-s.results:
				batch = append(batch, r)
			case <-linger.C:
				break more
			case <-s.quit:
				break more
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		taken, err := s.writeBatch(ctx, batch)
		cancel()
		for _, r := range batch {
			switch {
			case err != nil:
				r.done <- fmt.Errorf("record delivery result: %w", err)
			case !taken[r.item.ID]:
				r.done <- fmt.Errorf("outbound item %d (%s): no longer pending, or claimed again since attempt %d", r.item.ID, r.item.Key, r.item.Attempts)
			default:
				r.done <- nil
			}
		}
	}
}

// writeBatch writes results in one statement and reports which were
// taken: an item is updated only while pending and still claimed by the
// attempt the result is of (the attempt number is the claim's fencing
// token). The messages delivered items sent are added in the same
// statement, with any status Meta reported before.
func (s *Store) writeBatch(ctx context.Context, batch []result) (map[int64]bool, error) {
	n := len(batch)
	ids, attempts := make([]int64, n), make([]int32, n)
	outcomes, causes := make([]string, n), make([]string, n)
	ats := make([]time.Time, n)
	var mids []int64
	var mat []time.Time
	var mfrom, mbody, mstatus, mevent, mwa []string
	for i, r := range batch {
		ids[i], attempts[i], outcomes[i], causes[i], ats[i] = r.item.ID, int32(r.item.Attempts), r.outcome, r.cause, r.at
		if m := r.sent; m != nil && r.outcome == schemas.DeliveryDelivered && r.item.Conversation != "" {
			mids, mat, mfrom, mbody = append(mids, r.item.ID), append(mat, m.At), append(mfrom, m.From), append(mbody, m.Text)
			mstatus, mevent, mwa = append(mstatus, m.Status), append(mevent, m.Event), append(mwa, m.ID)
		}
	}
	taken := make(map[int64]bool, n)
	err := queryRows(ctx, s.outbox, `WITH f AS (
			UPDATE outbox o SET result = v.outcome, error = v.cause, leased_until = NULL,
				done_at = CASE WHEN v.outcome = 'pending' THEN o.done_at ELSE v.at END,
				due_at = CASE WHEN v.outcome = 'pending' THEN v.at ELSE o.due_at END
			FROM unnest($1::bigint[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[]) AS v(id, attempts, outcome, cause, at)
			WHERE o.id = v.id AND o.id = ANY($1) AND o.attempts = v.attempts AND o.result = 'pending'
			RETURNING o.id, o.conversation_id),
		m AS (
			INSERT INTO messages (conversation_id, at, sender, body, status, event_id, wa_id)
			SELECT f.conversation_id, s.at, s.sender, s.body, coalesce((
					SELECT x.status FROM (SELECT s.status UNION ALL SELECT status FROM statuses WHERE wa_id = s.wa_id AND wa_id <> '') x
					ORDER BY array_position(ARRAY['', 'sent', 'delivered', 'read', 'failed'], x.status) DESC NULLS LAST LIMIT 1), s.status),
				s.event_id, s.wa_id
			FROM f JOIN unnest($6::bigint[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
				AS s(id, at, sender, body, status, event_id, wa_id) ON s.id = f.id)
		SELECT id FROM f`, []any{ids, attempts, outcomes, causes, ats, mids, mat, mfrom, mbody, mstatus, mevent, mwa},
		func(rows pgx.Rows) error {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			taken[id] = true
			return nil
		})
	return taken, err
}
