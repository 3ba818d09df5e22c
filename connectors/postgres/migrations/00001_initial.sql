-- +goose Up

-- Every table that belongs to a conversation carries its id, and every
-- statement of a unit of work touches the conversations the unit holds,
-- so the schema can be distributed by conversation id (docs/scaling.md).

-- conversations holds each conversation's whole state as the engine
-- encodes it (engine.MarshalConv), plus the columns the daemon queries
-- by. A row whose state is NULL was created only to be locked: a unit of
-- work locks every conversation it names, existing or not.
CREATE TABLE conversations (
    id          text PRIMARY KEY,
    state       jsonb,
    status      text NOT NULL DEFAULT '',
    team        text NOT NULL DEFAULT '',
    assignee    text NOT NULL DEFAULT '',
    contact_id  text NOT NULL DEFAULT '',
    -- next_sla_at is the earliest SLA deadline not yet fired
    -- (engine.Conv.NextDeadline); the timers claim rows by it.
    next_sla_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70); -- room on the page for updates that touch no index (HOT)
CREATE INDEX conversations_next_sla ON conversations (next_sla_at) WHERE next_sla_at IS NOT NULL;
CREATE INDEX conversations_team_status ON conversations (team, status) WHERE state IS NOT NULL;

CREATE TABLE contacts (
    id    text PRIMARY KEY,
    state jsonb NOT NULL
);

-- events records every accepted event id: a redelivery is a duplicate.
-- (Distributed by conversation, the key would become (conversation_id,
-- id): see docs/scaling.md.)
CREATE TABLE events (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL,
    type            text NOT NULL,
    at              timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

-- decisions is the audit log: each evaluated event's decision record,
-- with the rule-set version that made it.
CREATE TABLE decisions (
    conversation_id text NOT NULL,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    event_id        text NOT NULL,
    ruleset         text NOT NULL,
    record          jsonb NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- messages are a conversation's messages, either way; wa_id is the
-- WhatsApp id of a message triage sent, which statuses name.
CREATE TABLE messages (
    conversation_id text NOT NULL,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    at              timestamptz NOT NULL,
    sender          text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT '',
    event_id        text NOT NULL DEFAULT '',
    wa_id           text NOT NULL DEFAULT '',
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX messages_wa_id ON messages (wa_id) WHERE wa_id <> '';

-- statuses remembers the WhatsApp statuses already recorded (message id
-- and status), so a redelivered webhook changes nothing, and so that a
-- status Meta reports before the send's answer is stored applies when it
-- is.
CREATE TABLE statuses (
    key             text PRIMARY KEY,
    conversation_id text NOT NULL DEFAULT '',
    wa_id           text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX statuses_wa_id ON statuses (wa_id) WHERE wa_id <> '';

-- outbox is the outbound work: delivered in id order per order_key
-- (conversation, or Slack channel), leased while being delivered.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL,
    order_key       text NOT NULL,
    key             text NOT NULL UNIQUE,
    kind            text NOT NULL,
    contact_id      text NOT NULL DEFAULT '',
    params          jsonb NOT NULL,
    decided_at      timestamptz NOT NULL,
    asked_by        text NOT NULL DEFAULT '',
    result          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    leased_until    timestamptz,
    error           text NOT NULL DEFAULT '',
    done_at         timestamptz
) WITH (fillfactor = 70); -- claims update rows in place (HOT)
CREATE INDEX outbox_pending ON outbox (id) WHERE result = 'pending';
CREATE INDEX outbox_order ON outbox (order_key, id) WHERE result = 'pending';
CREATE INDEX outbox_conversation ON outbox (conversation_id, id);
CREATE INDEX outbox_dead ON outbox (done_at DESC, id DESC) WHERE result = 'dead';

-- agents and teams are the state every conversation shares; a unit of
-- work changes them only under one transaction-scoped advisory lock.
CREATE TABLE agents (
    id     text PRIMARY KEY,
    status text NOT NULL,
    open   integer NOT NULL
);

CREATE TABLE teams (
    name       text PRIMARY KEY,
    last_given text NOT NULL DEFAULT ''
);

-- queue_entries are the conversations waiting in a team's queue, oldest
-- (lowest seq) first; a conversation waits in one queue at most. Rows,
-- not a list in teams, so that queueing one conversation writes one row
-- however long the queue.
CREATE TABLE queue_entries (
    conversation_id text PRIMARY KEY,
    team            text NOT NULL,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    since           timestamptz NOT NULL,
    request         jsonb NOT NULL
);
CREATE INDEX queue_entries_team ON queue_entries (team, seq);

-- +goose Down
DROP TABLE queue_entries;
DROP TABLE teams;
DROP TABLE agents;
DROP TABLE outbox;
DROP TABLE statuses;
DROP TABLE messages;
DROP TABLE decisions;
DROP TABLE events;
DROP TABLE contacts;
DROP TABLE conversations;
