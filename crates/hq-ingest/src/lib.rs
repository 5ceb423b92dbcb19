//! `hq-ingest`: HQ's side of the fleet. Each worker process is an MQTT 5 client in a shared
//! subscription on every station's events; it writes them into PostgreSQL in batches, and
//! acknowledges a message to the broker only after the commit that holds it. Writes are
//! idempotent (a record is keyed by its id and by station, stream and seq), so the broker's
//! redeliveries and the stations' re-sends are absorbed. One worker at a time also repairs
//! gaps: it asks stations for missing seqs with `resend` (see [`sweeper`]).
//!
//! ```text
//!   broker --$share/<group>/<prefix>/+/events/#--> ingest (route) --> writer (batch, COMMIT) --> PUBACK
//!          --<prefix>/+/status, cmd/resend/reply-->     |                                   
//!                                                   sweeper (advisory lock) --cmd/resend--> stations
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod db;
pub mod gaps;
pub mod ingest;
pub mod record;
pub mod sweeper;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

pub use config::IngestConfig;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("broker connection settings: {0}")]
    Mqtt(#[from] uplink::UplinkError),
}

/// Connects, creates the tables if needed, and runs the worker until `stop` turns true.
pub async fn run(config: IngestConfig, stop: watch::Receiver<bool>) -> Result<(), IngestError> {
    let options = ingest::mqtt_options(&config)?;
    let pool = pool(&config)?;
    db::ensure_schema(&pool).await?;
    let (client, eventloop) = rumqttc::v5::AsyncClient::new(
        options,
        // Room for a PUBACK per message the broker may have sent, and then some.
        2 * usize::from(config.mqtt.receive_maximum) + 64,
    );
    let connections = Arc::new(ingest::ConnectionCount::default());
    let (to_writer, from_mqtt) = mpsc::unbounded_channel();
    let (replies_tx, replies_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(ingest::run_writer(
        pool.clone(),
        config.mqtt.client_id.clone(),
        config.batch.clone(),
        config.mqtt.receive_maximum,
        client.clone(),
        connections.clone(),
        from_mqtt,
    ));
    let sweeper = tokio::spawn(
        sweeper::Sweeper::new(config.clone(), pool.clone(), client.clone())
            .run(replies_rx, stop.clone()),
    );
    tracing::info!(
        client_id = %config.mqtt.client_id,
        group = %config.mqtt.group,
        receive_maximum = config.mqtt.receive_maximum,
        "hq-ingest worker starting"
    );
    ingest::run_mqtt(
        &config,
        client,
        eventloop,
        connections,
        to_writer,
        replies_tx,
        writer,
        stop,
    )
    .await;
    let _ = sweeper.await;
    Ok(())
}

fn pool(config: &IngestConfig) -> Result<deadpool_postgres::Pool, IngestError> {
    let pg: tokio_postgres::Config = config
        .postgres
        .url
        .parse()
        .map_err(|e: tokio_postgres::Error| IngestError::Pool(format!("postgres.url: {e}")))?;
    let manager = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            // A connection broken by a server restart is replaced before use.
            recycling_method: deadpool_postgres::RecyclingMethod::Verified,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(config.postgres.pool)
        .build()
        .map_err(|e| IngestError::Pool(e.to_string()))
}
