//! What a restart takes over from the outbox: sales held when the agent stopped (back to the
//! matcher), the last sale sent per fuelling point (a pump may report it again), and closed
//! hours (for HQ's `hourly` command).

use forecourt_events::{DispenserEvent, Sale};
use tracing::{info, warn};

use crate::earlier_run::{last_released_per_fp, released_keys};
use crate::plate_notes::PlateNotes;
use crate::{Station, StationError};

/// How far back the outbox is read for sales and nozzle events already sent (a busy station's
/// day or two; an idle fuelling point's last sale older than that is not recognised).
const RELEASED_LOOKBACK: usize = 5_000;

/// What [`Station::restore`] took over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Closed hours, for HQ's `hourly` command.
    pub hours: usize,
    /// Hours an earlier run was counting, counted on (a summary not yet published is published).
    pub running_hours: usize,
    /// Fuelling points whose last sent sale the pump may still show.
    pub released: usize,
    /// Sales held when the agent stopped, back with the matcher.
    pub held: usize,
    /// HQ's notes on plates, not expired.
    pub plate_notes: usize,
}

impl Station {
    /// Takes over what the outbox holds from before this start. Call once, before [`Station::run`].
    pub async fn restore(&mut self) -> Result<Restored, StationError> {
        let restored = Restored {
            hours: self.restore_hourly().await?,
            running_hours: self.restore_running_hours().await?,
            released: self.restore_released_sales().await?,
            held: self.restore_held_sales().await?,
            plate_notes: self.restore_plate_notes().await?,
        };
        self.show_closed_hours();
        if restored.hours > 0 {
            info!(
                hours = restored.hours,
                "hourly summaries from before the last stop available on demand"
            );
        }
        if restored.held > 0 {
            info!(
                restored = restored.held,
                "sales held from before the last stop go to the matcher again"
            );
        }
        Ok(restored)
    }

    /// HQ's notes on plates, as the last `plate_notes` command left them; an unreadable list is
    /// logged and starts empty (HQ sends its notes again).
    async fn restore_plate_notes(&mut self) -> Result<usize, StationError> {
        let kept = self.kept_state::<PlateNotes>(
            crate::station::PLATE_NOTES_KEY,
            "the plate notes kept",
            "none shown",
        );
        let Some(mut notes) = kept.await? else {
            return Ok(0);
        };
        notes.prune(forecourt_events::now_millis());
        let held = notes.len();
        self.plate_notes.send_replace(std::sync::Arc::new(notes));
        Ok(held)
    }

    /// The hours the last run was counting when it stopped (saved every few seconds and at the
    /// stop), counted on: an hour that ended inside its publishing delay, or while the agent
    /// was down, is still published. After the closed hours (it skips those already published).
    async fn restore_running_hours(&mut self) -> Result<usize, StationError> {
        let kept = self.kept_state::<analytics::RunningHours>(
            crate::station::RUNNING_HOURS_KEY,
            "the hours the last run was counting",
            "counting afresh",
        );
        let Some(running) = kept.await? else {
            return Ok(0);
        };
        let hours = running.hours_counting();
        info!(
            hours,
            taken_t = running.taken_t,
            "hours the last run was counting are counted on"
        );
        self.analytics.restore_running_hours(running);
        Ok(hours)
    }

    /// The state kept under `key` as a `T`; `None` when none is kept, or when it cannot be read
    /// or understood (logged: `what` it is, and what the start does `instead`).
    async fn kept_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
        what: &str,
        instead: &str,
    ) -> Result<Option<T>, StationError> {
        let outbox = self.writer.outbox().clone();
        let kept = tokio::task::spawn_blocking(move || outbox.state(key)).await?;
        Ok(
            match kept.map(|body| body.map(serde_json::from_value::<T>)) {
                Ok(None) => None,
                Ok(Some(Ok(value))) => Some(value),
                Ok(Some(Err(e))) => {
                    warn!(error = %e, "{what} are not understood; {instead}");
                    None
                }
                Err(e) => {
                    warn!(error = %e, "{what} are unreadable; {instead}");
                    None
                }
            },
        )
    }

    /// Per fuelling point, the last sale sent before this start that the pump may still show.
    async fn restore_released_sales(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let (sales, nozzles) = tokio::task::spawn_blocking(move || {
            Ok::<_, outbox::OutboxError>((
                outbox.recent_bodies(wire::Stream::Sale.name(), RELEASED_LOOKBACK)?,
                outbox.recent_bodies(wire::Stream::Nozzle.name(), 4 * RELEASED_LOOKBACK)?,
            ))
        })
        .await?
        .map_err(crate::StationError::outbox("reading sales already sent"))?;
        self.earlier_run.released_keys(released_keys(&sales));
        Ok(self
            .earlier_run
            .released(last_released_per_fp(&sales, &nozzles)))
    }

    /// Sales that were held when the agent last stopped (a crash or power cut during their grace
    /// period) go back to the matcher, so each still leaves the station exactly once.
    async fn restore_held_sales(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let held = tokio::task::spawn_blocking(move || outbox.held())
            .await?
            .map_err(crate::StationError::outbox("reading held sales"))?;
        let mut restored = 0;
        for (key, body) in held {
            match serde_json::from_value::<Sale>(body) {
                Ok(sale) if key.starts_with("sale:") => {
                    self.matcher
                        .observe_dispenser(&DispenserEvent::SaleCompleted(sale.clone()));
                    self.earlier_run.held(sale);
                    restored += 1;
                }
                Ok(_) => {}
                Err(e) => warn!(key, error = %e, "held item is not a sale; left in place"),
            }
        }
        Ok(restored)
    }

    /// Puts the hourly summaries the outbox still holds back into the analytics, so HQ's
    /// `hourly` command answers for hours closed before a restart. Returns how many.
    async fn restore_hourly(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let keep = self.analytics.config().keep_hours;
        let bodies = tokio::task::spawn_blocking(move || {
            outbox.recent_bodies(wire::Stream::Hourly.name(), keep)
        })
        .await?
        .map_err(crate::StationError::outbox("reading hourly summaries"))?;
        let mut restored = 0;
        for body in bodies {
            match serde_json::from_value::<wire::HourSummary>(body) {
                Ok(summary) => {
                    self.analytics.restore_hour(summary);
                    restored += 1;
                }
                Err(e) => warn!(error = %e, "stored hourly summary not understood; skipped"),
            }
        }
        Ok(restored)
    }
}
