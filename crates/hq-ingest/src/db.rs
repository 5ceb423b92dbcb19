//! HQ's PostgreSQL tables and the statements the writer and the gap sweeper run.
//!
//! Every write is idempotent: a record is keyed by its `id` and by `(station, stream, seq)`,
//! so a message the broker delivers twice (a worker that died before its PUBACK, a station's
//! `resend`) is absorbed, and counted as a duplicate.

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::gaps::{Gap, SeqRange, StreamView};
use crate::record::EventRecord;

/// Serialises schema creation between workers starting at once.
const SCHEMA_LOCK: i64 = 0x4651_4e47_0001;
/// Held (session-level) by the one worker running the gap sweeper.
pub const SWEEPER_LOCK: i64 = 0x4651_4e47_0002;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id          uuid PRIMARY KEY,
    station     text NOT NULL,
    stream      text NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 1),
    t           bigint NOT NULL,
    body        jsonb NOT NULL,
    received_ms bigint NOT NULL,
    worker      text NOT NULL,
    UNIQUE (station, stream, seq)
);
-- A record whose (station, stream, seq) is stored under another id, or whose id is stored
-- under another (station, stream, seq): a station bug or a forged message. Must stay empty.
CREATE TABLE IF NOT EXISTS conflicts (
    id          uuid NOT NULL,
    station     text NOT NULL,
    stream      text NOT NULL,
    seq         bigint NOT NULL,
    body        jsonb NOT NULL,
    stored_id   uuid NOT NULL,
    received_ms bigint NOT NULL,
    PRIMARY KEY (id, station, stream, seq)
);
-- Messages that are not records (bad JSON, topic and envelope disagree): kept, never dropped;
-- once per topic and payload (a redelivery, or a status every worker sees, is one row).
CREATE TABLE IF NOT EXISTS rejected (
    n           bigserial PRIMARY KEY,
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    payload_md5 text GENERATED ALWAYS AS (md5(payload)) STORED,
    why         text NOT NULL,
    received_ms bigint NOT NULL,
    worker      text NOT NULL,
    UNIQUE (topic, payload_md5)
);
-- Per (station, stream): every seq up to contiguous_to is in events or unrecoverable; max_seq
-- is the highest seq known to exist (stored here, or reported acknowledged by the station).
CREATE TABLE IF NOT EXISTS stream_progress (
    station       text NOT NULL,
    stream        text NOT NULL,
    contiguous_to bigint NOT NULL DEFAULT 0,
    max_seq       bigint NOT NULL,
    updated_ms    bigint NOT NULL,
    PRIMARY KEY (station, stream)
);
-- Holes being repaired (rewritten by the sweeper at every sweep).
CREATE TABLE IF NOT EXISTS gaps (
    station       text NOT NULL,
    stream        text NOT NULL,
    from_seq      bigint NOT NULL,
    to_seq        bigint NOT NULL,
    first_seen_ms bigint NOT NULL,
    asked         integer NOT NULL,
    last_asked_ms bigint,
    PRIMARY KEY (station, stream, from_seq)
);
-- Seqs the station says it no longer holds (dropped over its outbox cap, past its archive).
CREATE TABLE IF NOT EXISTS unrecoverable (
    station     text NOT NULL,
    stream      text NOT NULL,
    from_seq    bigint NOT NULL,
    to_seq      bigint NOT NULL,
    reported_ms bigint NOT NULL,
    PRIMARY KEY (station, stream, from_seq, to_seq)
);
-- Every resend asked for: what the repair cost, station by station.
CREATE TABLE IF NOT EXISTS resends (
    station  text NOT NULL,
    stream   text NOT NULL,
    from_seq bigint NOT NULL,
    to_seq   bigint NOT NULL,
    asked_ms bigint NOT NULL,
    worker   text NOT NULL
);
CREATE TABLE IF NOT EXISTS station_status (
    station     text PRIMARY KEY,
    state       text NOT NULL,
    t           bigint NOT NULL,
    payload     jsonb NOT NULL,
    received_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS worker_stats (
    worker         text PRIMARY KEY,
    received       bigint NOT NULL DEFAULT 0,
    inserted       bigint NOT NULL DEFAULT 0,
    duplicates     bigint NOT NULL DEFAULT 0,
    conflicts      bigint NOT NULL DEFAULT 0,
    rejected       bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    resends_sent   bigint NOT NULL DEFAULT 0,
    gone_ranges    bigint NOT NULL DEFAULT 0,
    updated_ms     bigint NOT NULL DEFAULT 0
);
";

pub async fn ensure_schema(pool: &Pool) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("PostgreSQL: {}", server_words(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The server's own words (code and message) where it gave any; tokio-postgres alone says
/// only "db error".
fn server_words(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl DbError {
    /// The server refused the data itself (SQLSTATE class 22, data exception, or 23, an
    /// integrity rule other than the duplicates the inserts absorb): sending it again cannot
    /// help. Anything else (connection, server restart, deadlock) is worth a retry.
    pub fn is_refused_data(&self) -> bool {
        let code = match self {
            DbError::Postgres(e) => e.as_db_error().map(|d| d.code().code()),
            DbError::Pool(deadpool_postgres::PoolError::Backend(e)) => {
                e.as_db_error().map(|d| d.code().code())
            }
            DbError::Pool(_) => None,
        };
        code.is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
    }
}

/// A station status message as it came (retained, or the broker's last will).
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub station: String,
    pub status: wire::Status,
    pub payload: serde_json::Value,
}

/// A station's own word on how far each of its streams was acknowledged.
#[derive(Debug, Clone)]
pub struct ProgressRow {
    pub station: String,
    pub acked_through: Vec<(String, i64)>,
}

#[derive(Debug, Clone)]
pub struct RejectedRow {
    pub topic: String,
    pub payload: Vec<u8>,
    pub why: String,
}

/// One batch: what came since the last commit.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<EventRecord>,
    pub statuses: Vec<StatusRow>,
    pub progress: Vec<ProgressRow>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    pub conflicts: u64,
}

/// Writes a batch in one transaction. Records go in sorted by (station, stream, seq), so two
/// workers' batches take their row locks in one order and cannot deadlock each other.
pub async fn write_batch(
    pool: &Pool,
    worker: &str,
    batch: &mut Batch,
    now_ms: i64,
) -> Result<BatchOutcome, DbError> {
    batch
        .events
        .sort_by(|a, b| (&a.station, &a.stream, a.seq).cmp(&(&b.station, &b.stream, b.seq)));
    let ids: Vec<Uuid> = batch.events.iter().map(|r| r.id).collect();
    let stations: Vec<&str> = batch.events.iter().map(|r| r.station.as_str()).collect();
    let streams: Vec<&str> = batch.events.iter().map(|r| r.stream.as_str()).collect();
    let seqs: Vec<i64> = batch.events.iter().map(|r| r.seq).collect();
    let ts: Vec<i64> = batch.events.iter().map(|r| r.t).collect();
    let bodies: Vec<&serde_json::Value> = batch.events.iter().map(|r| &r.body).collect();
    let columns: [&(dyn ToSql + Sync); 6] = [&ids, &stations, &streams, &seqs, &ts, &bodies];

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut outcome = BatchOutcome::default();
    if !batch.events.is_empty() {
        let inserted = tx
            .execute(
                "INSERT INTO events (id, station, stream, seq, t, body, received_ms, worker)
                 SELECT id, station, stream, seq, t, body, $7, $8
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::jsonb[])
                      WITH ORDINALITY AS r(id, station, stream, seq, t, body, n)
                 ORDER BY n
                 ON CONFLICT DO NOTHING",
                &[columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], &now_ms, &worker],
            )
            .await?;
        outcome.inserted = inserted;
        outcome.duplicates = batch.events.len() as u64 - inserted;
        if outcome.duplicates > 0 {
            outcome.conflicts = tx
                .execute(
                    "INSERT INTO conflicts (id, station, stream, seq, body, stored_id, received_ms)
                     SELECT r.id, r.station, r.stream, r.seq, r.body, e.id, $7
                     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::jsonb[])
                          AS r(id, station, stream, seq, t, body)
                     JOIN events e ON (e.station = r.station AND e.stream = r.stream AND e.seq = r.seq)
                                   OR e.id = r.id
                     WHERE (e.id, e.station, e.stream, e.seq) IS DISTINCT FROM (r.id, r.station, r.stream, r.seq)
                     ON CONFLICT DO NOTHING",
                    &[columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], &now_ms],
                )
                .await?;
        }
    }
    // What each stream is known to reach: its records here, and the stations' own reports.
    // One statement, rows in (station, stream) order: batches lock them in one order.
    let mut known: Vec<(&str, &str, i64)> = batch
        .events
        .iter()
        .map(|r| (r.station.as_str(), r.stream.as_str(), r.seq))
        .collect();
    for p in &batch.progress {
        for (stream, seq) in &p.acked_through {
            known.push((p.station.as_str(), stream.as_str(), *seq));
        }
    }
    if !known.is_empty() {
        let k_stations: Vec<&str> = known.iter().map(|k| k.0).collect();
        let k_streams: Vec<&str> = known.iter().map(|k| k.1).collect();
        let k_seqs: Vec<i64> = known.iter().map(|k| k.2).collect();
        tx.execute(
            "INSERT INTO stream_progress (station, stream, max_seq, updated_ms)
             SELECT station, stream, max(seq), $4
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(station, stream, seq)
             GROUP BY station, stream
             ORDER BY station, stream
             ON CONFLICT (station, stream) DO UPDATE
                SET max_seq = GREATEST(stream_progress.max_seq, EXCLUDED.max_seq),
                    updated_ms = EXCLUDED.updated_ms",
            &[&k_stations, &k_streams, &k_seqs, &now_ms],
        )
        .await?;
    }
    batch.statuses.sort_by(|a, b| a.station.cmp(&b.station));
    for s in &batch.statuses {
        let state = match s.status.state {
            wire::StatusState::Online => "online",
            wire::StatusState::Offline => "offline",
        };
        tx.execute(
            "INSERT INTO station_status (station, state, t, payload, received_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (station) DO UPDATE
                SET state = EXCLUDED.state, t = EXCLUDED.t, payload = EXCLUDED.payload,
                    received_ms = EXCLUDED.received_ms
                WHERE station_status.t <= EXCLUDED.t",
            &[&s.station, &state, &s.status.t, &s.payload, &now_ms],
        )
        .await?;
    }
    for r in &batch.rejected {
        tx.execute(
            "INSERT INTO rejected (topic, payload, why, received_ms, worker) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[&r.topic, &r.payload, &r.why, &now_ms, &worker],
        )
        .await?;
    }
    let received = (batch.events.len() + batch.statuses.len() + batch.rejected.len()) as i64;
    // Health reports are not counted as received records: they are QoS 0 and periodic.
    add_stats(
        &*tx,
        worker,
        &[
            ("received", received),
            ("inserted", outcome.inserted as i64),
            ("duplicates", outcome.duplicates as i64),
            ("conflicts", outcome.conflicts as i64),
            ("rejected", batch.rejected.len() as i64),
            ("batches", 1),
        ],
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Adds to this worker's counters (one row per worker: workers never wait on each other here).
pub async fn add_stats(
    client: &impl GenericClient,
    worker: &str,
    counts: &[(&'static str, i64)],
    now_ms: i64,
) -> Result<(), DbError> {
    // Column names come from this crate's constants, never from input.
    let sets: Vec<String> = counts
        .iter()
        .map(|(c, _)| format!("{c} = worker_stats.{c} + EXCLUDED.{c}"))
        .collect();
    let names: Vec<&str> = counts.iter().map(|(c, _)| *c).collect();
    let placeholders: Vec<String> = (0..counts.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "INSERT INTO worker_stats (worker, updated_ms, {}) VALUES ($1, $2, {})
         ON CONFLICT (worker) DO UPDATE SET updated_ms = EXCLUDED.updated_ms, {}",
        names.join(", "),
        placeholders.join(", "),
        sets.join(", ")
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&worker, &now_ms];
    for (_, v) in counts {
        params.push(v);
    }
    client.execute(sql.as_str(), &params).await?;
    Ok(())
}

/// The (station, stream) pairs with seqs above their contiguous prefix, with what is stored
/// and declared unrecoverable above it.
pub async fn lagging_streams(
    client: &impl GenericClient,
) -> Result<Vec<((String, String), StreamView)>, DbError> {
    let mut views: std::collections::BTreeMap<(String, String), StreamView> = Default::default();
    for row in client
        .query(
            "SELECT station, stream, contiguous_to, max_seq FROM stream_progress WHERE max_seq > contiguous_to",
            &[],
        )
        .await?
    {
        views.insert(
            (row.get(0), row.get(1)),
            StreamView {
                contiguous_to: row.get(2),
                known_to: row.get(3),
                ..StreamView::default()
            },
        );
    }
    if views.is_empty() {
        return Ok(Vec::new());
    }
    // Runs of consecutive seqs ("islands"): seq - row_number is constant along a run.
    for row in client
        .query(
            "SELECT station, stream, min(seq), max(seq) FROM (
                 SELECT e.station, e.stream, e.seq,
                        e.seq - row_number() OVER (PARTITION BY e.station, e.stream ORDER BY e.seq) AS run
                 FROM events e JOIN stream_progress p USING (station, stream)
                 WHERE p.max_seq > p.contiguous_to AND e.seq > p.contiguous_to) s
             GROUP BY station, stream, run",
            &[],
        )
        .await?
    {
        if let Some(v) = views.get_mut(&(row.get(0), row.get(1))) {
            v.stored.push((row.get(2), row.get(3)));
        }
    }
    for row in client
        .query(
            "SELECT u.station, u.stream, u.from_seq, u.to_seq
             FROM unrecoverable u JOIN stream_progress p USING (station, stream)
             WHERE p.max_seq > p.contiguous_to AND u.to_seq > p.contiguous_to",
            &[],
        )
        .await?
    {
        if let Some(v) = views.get_mut(&(row.get(0), row.get(1))) {
            v.unrecoverable.push((row.get(2), row.get(3)));
        }
    }
    for v in views.values_mut() {
        v.stored.sort_unstable();
    }
    Ok(views.into_iter().collect())
}

pub async fn open_gaps(
    client: &impl GenericClient,
) -> Result<std::collections::BTreeMap<(String, String), Vec<Gap>>, DbError> {
    let mut gaps: std::collections::BTreeMap<(String, String), Vec<Gap>> = Default::default();
    for row in client
        .query(
            "SELECT station, stream, from_seq, to_seq, first_seen_ms, asked, last_asked_ms
             FROM gaps ORDER BY station, stream, from_seq",
            &[],
        )
        .await?
    {
        gaps.entry((row.get(0), row.get(1))).or_default().push(Gap {
            from_seq: row.get(2),
            to_seq: row.get(3),
            first_seen_ms: row.get(4),
            asked: row.get(5),
            last_asked_ms: row.get(6),
        });
    }
    Ok(gaps)
}

/// What one sweep found: each stream's new prefix, and all open gaps (replacing the table).
pub struct SweepResult<'a> {
    pub prefixes: Vec<(&'a (String, String), i64)>,
    pub gaps: Vec<(&'a (String, String), &'a Gap)>,
}

pub async fn save_sweep(pool: &Pool, result: &SweepResult<'_>, now_ms: i64) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let stations: Vec<&str> = result.prefixes.iter().map(|(k, _)| k.0.as_str()).collect();
    let streams: Vec<&str> = result.prefixes.iter().map(|(k, _)| k.1.as_str()).collect();
    let prefixes: Vec<i64> = result.prefixes.iter().map(|(_, c)| *c).collect();
    tx.execute(
        "UPDATE stream_progress p SET contiguous_to = GREATEST(p.contiguous_to, r.c), updated_ms = $4
         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(station, stream, c)
         WHERE p.station = r.station AND p.stream = r.stream",
        &[&stations, &streams, &prefixes, &now_ms],
    )
    .await?;
    tx.execute("DELETE FROM gaps", &[]).await?;
    let g_stations: Vec<&str> = result.gaps.iter().map(|(k, _)| k.0.as_str()).collect();
    let g_streams: Vec<&str> = result.gaps.iter().map(|(k, _)| k.1.as_str()).collect();
    let from: Vec<i64> = result.gaps.iter().map(|(_, g)| g.from_seq).collect();
    let to: Vec<i64> = result.gaps.iter().map(|(_, g)| g.to_seq).collect();
    let first: Vec<i64> = result.gaps.iter().map(|(_, g)| g.first_seen_ms).collect();
    let asked: Vec<i32> = result.gaps.iter().map(|(_, g)| g.asked).collect();
    let last: Vec<Option<i64>> = result.gaps.iter().map(|(_, g)| g.last_asked_ms).collect();
    tx.execute(
        "INSERT INTO gaps (station, stream, from_seq, to_seq, first_seen_ms, asked, last_asked_ms)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                              $6::integer[], $7::bigint[])",
        &[&g_stations, &g_streams, &from, &to, &first, &asked, &last],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps what a station said it no longer holds of one stream, and counts the ranges in the
/// worker's figures, in one transaction.
pub async fn add_unrecoverable(
    pool: &Pool,
    worker: &str,
    station: &str,
    stream: &str,
    ranges: &[SeqRange],
    now_ms: i64,
) -> Result<(), DbError> {
    let from: Vec<i64> = ranges.iter().map(|r| r.0).collect();
    let to: Vec<i64> = ranges.iter().map(|r| r.1).collect();
    insert_counted(
        pool,
        "INSERT INTO unrecoverable (station, stream, from_seq, to_seq, reported_ms)
         SELECT $1, $2, from_seq, to_seq, $5
         FROM unnest($3::bigint[], $4::bigint[]) AS r(from_seq, to_seq)
         ON CONFLICT DO NOTHING",
        &[&station, &stream, &from, &to, &now_ms],
        (worker, "gone_ranges", ranges.len() as i64),
        now_ms,
    )
    .await
}

/// Logs the resends one sweep published and adds them to the worker's count.
pub async fn log_resends(
    pool: &Pool,
    worker: &str,
    asked: &[((String, String), SeqRange)],
    now_ms: i64,
) -> Result<(), DbError> {
    let stations: Vec<&str> = asked.iter().map(|((s, _), _)| s.as_str()).collect();
    let streams: Vec<&str> = asked.iter().map(|((_, s), _)| s.as_str()).collect();
    let from: Vec<i64> = asked.iter().map(|(_, r)| r.0).collect();
    let to: Vec<i64> = asked.iter().map(|(_, r)| r.1).collect();
    insert_counted(
        pool,
        "INSERT INTO resends (station, stream, from_seq, to_seq, asked_ms, worker)
         SELECT station, stream, from_seq, to_seq, $5, $6
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS r(station, stream, from_seq, to_seq)",
        &[&stations, &streams, &from, &to, &now_ms, &worker],
        (worker, "resends_sent", asked.len() as i64),
        now_ms,
    )
    .await
}

/// Runs one insert and adds `count` to the worker's figure `stat`, in one transaction.
async fn insert_counted(
    pool: &Pool,
    insert: &str,
    params: &[&(dyn ToSql + Sync)],
    (worker, stat, count): (&str, &'static str, i64),
    now_ms: i64,
) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(insert, params).await?;
    add_stats(&*tx, worker, &[(stat, count)], now_ms).await?;
    tx.commit().await?;
    Ok(())
}
