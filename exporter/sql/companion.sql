-- Companion tables owned by vault-drift, beside vault-api's iam_* tables and sys_infra_state.
-- Created idempotently at start-up; the schema version lives in sys_infra_drift_schema
-- (PRAGMA user_version is a single slot of the file and belongs to vault-api).

CREATE TABLE IF NOT EXISTS sys_infra_drift_schema (
    version     INTEGER NOT NULL
);

-- Per audience: the open drift episode and the last check's counts.
CREATE TABLE IF NOT EXISTS sys_infra_drift_state (
    audience            TEXT PRIMARY KEY,
    drift_since         TEXT,              -- start of the current episode; NULL when not drifting
    episode_id          INTEGER,           -- sys_infra_drift_episode.id of the open episode
    last_check_at       TEXT,
    expected_count      INTEGER,
    actual_count        INTEGER,
    missing_count       INTEGER,
    extra_count         INTEGER,
    error_since         TEXT,              -- first check of the current run of errors
    consecutive_errors  INTEGER NOT NULL DEFAULT 0,
    missing_since       TEXT,              -- start of each side of the drift (NULL: that side
    extra_since         TEXT,              -- is not drifting)
    observed_at         TEXT,              -- last check that read both sides (NULL: an older
                                           -- vault-drift wrote the row)
    missing_seconds_closed  REAL,          -- member-seconds of members that stopped drifting:
    extra_seconds_closed    REAL           -- the exposure counters' persisted part
);

-- Per drifting member: when it was first seen missing / extra in the current episode.
CREATE TABLE IF NOT EXISTS sys_infra_drift_member (
    audience        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('missing', 'extra')),
    email           TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    note            TEXT,              -- what Cloudflare's other rules say: "excluded in Cloudflare", ...
    attribution     TEXT,              -- JSON: what Cloudflare's audit log says about who made it
                                       -- drift (docs/design.md, "Attribution"); NULL: an older vault-drift wrote the row
    PRIMARY KEY (audience, kind, email)
) WITHOUT ROWID;

-- History: one row per drift episode.
CREATE TABLE IF NOT EXISTS sys_infra_drift_episode (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    audience                TEXT NOT NULL,
    namespace               TEXT NOT NULL,
    opened_at               TEXT NOT NULL,
    closed_at               TEXT,
    peak_missing            INTEGER NOT NULL DEFAULT 0,
    peak_extra              INTEGER NOT NULL DEFAULT 0,
    close_reason            TEXT,          -- sync | external | removed
    closed_by               TEXT,          -- actor of the sync that closed it, if any
    critical_notified_at    TEXT,          -- the critical mail went out (once per episode)
    resolution_notified_at  TEXT
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_episode_audience
    ON sys_infra_drift_episode (audience, opened_at);

-- History: one row per check cycle (full or targeted).
CREATE TABLE IF NOT EXISTS sys_infra_drift_cycle (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at          TEXT NOT NULL,
    finished_at         TEXT NOT NULL,
    trigger             TEXT NOT NULL,     -- schedule | change | retry | api | cli | sync | startup
    scope               TEXT NOT NULL,     -- full | partial
    vault_ok            INTEGER NOT NULL,
    cloudflare_ok       INTEGER NOT NULL,
    total               INTEGER NOT NULL,
    pending             INTEGER NOT NULL,
    synced              INTEGER NOT NULL,
    drift               INTEGER NOT NULL,
    error               INTEGER NOT NULL,
    duration_seconds    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_cycle_at ON sys_infra_drift_cycle (started_at);

-- History: an audience entering error, or its error message changing.
CREATE TABLE IF NOT EXISTS sys_infra_drift_error (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    audience    TEXT NOT NULL,
    message     TEXT NOT NULL
);

-- Audit: every sync attempt and group creation (dry runs excluded).
CREATE TABLE IF NOT EXISTS sys_infra_drift_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    audience        TEXT NOT NULL,
    action          TEXT NOT NULL,         -- sync | create_group
    trigger         TEXT NOT NULL,         -- api | page | cli | auto
    actor           TEXT NOT NULL,
    mode            TEXT NOT NULL,         -- full | add_only | remove_only
    forced          INTEGER NOT NULL DEFAULT 0,
    group_id        TEXT,
    added           TEXT NOT NULL DEFAULT '[]',   -- JSON array of emails
    removed         TEXT NOT NULL DEFAULT '[]',
    added_count     INTEGER NOT NULL DEFAULT 0,
    removed_count   INTEGER NOT NULL DEFAULT 0,
    result          TEXT NOT NULL,         -- in_progress | synced | noop | blocked | error
    reason          TEXT
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_audit_audience ON sys_infra_drift_audit (audience, started_at);

-- Operator decisions.
CREATE TABLE IF NOT EXISTS sys_infra_drift_ignore (
    audience    TEXT PRIMARY KEY,
    until       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sys_infra_drift_settings (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL                  -- JSON
);

-- Mail: what went out, so nothing is sent twice across restarts.
CREATE TABLE IF NOT EXISTS sys_infra_drift_mail (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,             -- digest | critical | resolved
    episode_id  INTEGER,
    recipients  INTEGER NOT NULL,
    result      TEXT NOT NULL,             -- sent | failed
    detail      TEXT
);

-- One writer per database where no lock file can exist (Cloudflare D1): `serve` holds this
-- lease and renews it with a compare-and-set UPDATE; another `serve` takes it only once
-- it has expired.
CREATE TABLE IF NOT EXISTS sys_infra_drift_lease (
    name        TEXT PRIMARY KEY,          -- 'writer'
    holder      TEXT NOT NULL,             -- host, pid and a random id of the holding process
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- Exposure: every extra member that stopped being extra (whatever removed it), with how long
-- it lasted. Pruned with the history; the histogram's totals below are kept for good.
CREATE TABLE IF NOT EXISTS sys_infra_drift_revocation (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    audience            TEXT NOT NULL,
    namespace           TEXT NOT NULL,
    provider            TEXT NOT NULL,
    email               TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL,     -- first seen extra
    revoked_at          TEXT NOT NULL,     -- the check that found it gone
    duration_seconds    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_revocation_at ON sys_infra_drift_revocation (revoked_at);

-- vault_drift_revocation_duration_seconds: observations per bucket (not cumulative) and their
-- sum, written with each revocation row, so a restart neither resets nor repeats them.
CREATE TABLE IF NOT EXISTS sys_infra_drift_revocation_total (
    namespace   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    bucket      TEXT NOT NULL,             -- upper bound in seconds as exposed ('900.0'), or '+Inf'
    count       INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    PRIMARY KEY (namespace, provider, bucket)
) WITHOUT ROWID;

-- Attribution (docs/design.md, "Attribution"): the account audit log's entries about the audiences' Access groups,
-- each read once. Entries by vault-api and by the exporter's own syncs are kept with their
-- source; the manual ones also feed vault_drift_audience_manual_changes_total (never pruned).
CREATE TABLE IF NOT EXISTS sys_infra_drift_group_change (
    audit_log_id    TEXT PRIMARY KEY,      -- Cloudflare's entry id
    group_id        TEXT NOT NULL,
    at              TEXT NOT NULL,
    actor_email     TEXT,
    actor_id        TEXT,
    actor_type      TEXT,
    token_id        TEXT,
    interface       TEXT,                  -- as Cloudflare wrote it (UI, API, ...)
    action          TEXT,
    added           TEXT,                  -- JSON array of the include emails it added; NULL when
    removed         TEXT,                  -- the entry's values could not be read
    source          TEXT NOT NULL          -- manual | vault-api | exporter
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_group_change_group
    ON sys_infra_drift_group_change (group_id, at);

-- How far the audit log has been read for each group: never read twice.
CREATE TABLE IF NOT EXISTS sys_infra_drift_audit_read (
    group_id    TEXT PRIMARY KEY,
    since       TEXT NOT NULL,
    until       TEXT NOT NULL
);

-- Webhooks (docs/webhooks.md): the outbox. One row per event and receiver, written in the
-- same transaction (D1: the same batch) as the state change that caused the event, deleted
-- once the receiver took it or gave it up. Delivered in id order per audience and receiver.
CREATE TABLE IF NOT EXISTS sys_infra_drift_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,             -- webhook-id: the same on every retry
    destination TEXT NOT NULL,             -- a hash of the receiver's URL (never the URL)
    audience    TEXT NOT NULL,
    type        TEXT NOT NULL,             -- drift.opened, sync.applied, ...
    created_at  TEXT NOT NULL,             -- retried for 24 h from here
    body        TEXT NOT NULL              -- the JSON body, signed as it is
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_outbox_destination
    ON sys_infra_drift_outbox (destination, audience, id);

-- Effective removal (README, "Effective removal"): each email that left an audience's group
-- while Vault does not grant it has its Cloudflare Access sessions revoked. The row is written
-- before the call and stays pending until Cloudflare answers success; it is the audit too.
CREATE TABLE IF NOT EXISTS sys_infra_drift_session_revocation (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    audience        TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    provider        TEXT NOT NULL,
    email           TEXT NOT NULL,
    reason          TEXT NOT NULL,         -- sync | auto_sync | observed_removal
    removed_at      TEXT NOT NULL,         -- when it left the group (as seen)
    first_seen_at   TEXT,                  -- first seen extra; NULL: never seen extra
    state           TEXT NOT NULL,         -- pending | revoked | cancelled (Vault grants it again)
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    revoked_at      TEXT,                  -- Cloudflare answered success
    last_error      TEXT                   -- the last failure, as Cloudflare said it
);
-- One pending revocation per audience and email: queuing a leaver twice is a no-op.
CREATE UNIQUE INDEX IF NOT EXISTS sys_infra_drift_session_revocation_pending
    ON sys_infra_drift_session_revocation (audience, email) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS sys_infra_drift_session_revocation_audience
    ON sys_infra_drift_session_revocation (audience, removed_at);

-- vault_drift_session_revocations_total (kind 'result', bucket = ok | failed) and
-- vault_drift_access_end_duration_seconds (kind 'access_end', bucket as exposed), written with
-- each attempt's outcome so that a restart neither resets nor repeats them.
CREATE TABLE IF NOT EXISTS sys_infra_drift_session_total (
    namespace   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bucket      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    PRIMARY KEY (namespace, provider, kind, bucket)
) WITHOUT ROWID;

-- How far the removals checks recorded (sys_infra_drift_revocation.id) were turned into
-- session revocations; set to the newest row the first time, so history is never revoked.
CREATE TABLE IF NOT EXISTS sys_infra_drift_session_cursor (
    name        TEXT PRIMARY KEY,          -- 'removals'
    last_id     INTEGER NOT NULL
);

-- Idempotency keys of the write batches sent to D1 (vault/ledger.py): each batch inserts its
-- own key last, so a batch sent again after a lost answer fails on the key and is rolled back
-- whole. `changes` and `row_id` are what the batch's statement before the key did. Keys begin
-- with their ISO time; those older than a day are pruned. Unused on a SQLite file.
CREATE TABLE IF NOT EXISTS sys_infra_drift_write (
    key         TEXT PRIMARY KEY,          -- '2026-12-07T11:40:00Z/' and 16 random hex digits
    changes     INTEGER,
    row_id      INTEGER
) WITHOUT ROWID;

-- Exemptions (docs/exemptions.md): a sanctioned exception for one member of one audience,
-- with a reason, an owner and an end date. Rows are never deleted: a row is its own audit
-- (who made it and when, who ended it, when and how).
CREATE TABLE IF NOT EXISTS sys_infra_drift_exemption (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    audience    TEXT NOT NULL,
    email       TEXT NOT NULL,             -- lowercased
    side        TEXT NOT NULL CHECK (side IN ('extra', 'missing')),
    reason      TEXT NOT NULL,
    owner       TEXT NOT NULL,             -- page:<user> | api:<token name>
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT,                      -- NULL until deleted, replaced or marked expired
    ended_by    TEXT,                      -- who deleted or replaced it; 'expiry' for expired
    end_reason  TEXT                       -- deleted | expired | replaced
);
CREATE INDEX IF NOT EXISTS sys_infra_drift_exemption_member
    ON sys_infra_drift_exemption (audience, email, ended_at);
CREATE INDEX IF NOT EXISTS sys_infra_drift_exemption_ended
    ON sys_infra_drift_exemption (ended_at);
