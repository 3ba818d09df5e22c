-- +goose Up

-- leased_by is the store that claimed a pending item: the key of the
-- session-level advisory lock that store holds for as long as it runs.
-- When no session holds that lock any more, the store is gone (its
-- process was killed, or lost its database), and what it leased can be
-- claimed again at once instead of when the lease runs out.
ALTER TABLE outbox ADD COLUMN leased_by bigint;

-- +goose Down
ALTER TABLE outbox DROP COLUMN leased_by;
