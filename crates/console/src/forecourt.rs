//! The forecourt as the console shows it: one tile per fuelling point, kept from the station's
//! records as they are decided (the same `wire` payloads HQ gets). Pure: records in, tiles and
//! API events out.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use forecourt_events::{FpNumber, FramePlates, UnixMillis};
use serde::Serialize;
use station::plate_notes::PlateNotes;
use uuid::Uuid;
use wire::{
    Arrival, ArrivalState, NozzleBody, NozzleState, PumpBody, PumpState, SaleBody, SaleCorrection,
    Stream, VisitRecord,
};

/// Sales kept for the sales page, newest first.
pub const RECENT_SALES: usize = 200;
/// Arrivals kept for the arrivals ticker, newest first.
pub const RECENT_ARRIVALS: usize = 50;

/// Cars kept per fuelling point (the one at the pump and those queued behind it); a car whose
/// visit never closes (the agent restarted) is forgotten after [`CAR_FORGOTTEN_MS`].
pub const MAX_CARS: usize = 6;
pub const CAR_FORGOTTEN_MS: i64 = 30 * 60 * 1000;

/// What the pump is doing, as its nozzle events and sales tell it. DART and IFSF report no
/// running volume to the station yet, so fuelling shows as the nozzle being out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PumpActivity {
    /// Nothing since the agent started, or the last sale was completed.
    Idle,
    /// A nozzle is out: the customer is fuelling (or about to).
    NozzleOut,
    /// The nozzle is back; the pump has not reported the sale yet.
    NozzleIn,
    /// The sale was reported (see `last_sale`).
    Completed,
}

/// A car the cameras read in the fuelling point's zone whose visit has not ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarView {
    pub plate: String,
    pub confidence: f64,
    pub camera: String,
    /// When it was first read there.
    pub arrived_t: UnixMillis,
    /// Said from its first reads, not yet confirmed (see `docs/mqtt.md`, `events/arrival`).
    pub provisional: bool,
    /// HQ's note on the plate (`plate_notes`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When a camera last read its plate (its arrival, or a later read): a car not read for a
    /// while may have left, though its visit lasts until 3 minutes without a read.
    pub last_read_t: UnixMillis,
    /// `last_read_t` as the API last streamed it (see [`READ_REFRESH_MS`]).
    #[serde(skip)]
    streamed_read_t: UnixMillis,
    #[serde(skip)]
    visit: String,
}

/// A car's `last_read_t` is streamed again once it moved on by this much: often enough for a
/// page to tell a car read now from one not read for a while, without a tile event per frame.
pub const READ_REFRESH_MS: i64 = 5_000;

/// An arrival as the ticker and the local API show it: the record HQ gets, and HQ's note on the
/// plate when it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArrivalView {
    #[serde(flatten)]
    pub arrival: Arrival,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One fuelling point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tile {
    pub fp: FpNumber,
    /// `None` until its sale source said.
    pub online: Option<bool>,
    pub activity: PumpActivity,
    /// The nozzle of the current activity.
    pub nozzle: Option<u8>,
    /// Since when the activity holds.
    pub since_t: Option<UnixMillis>,
    /// Earliest arrived first: the car at the pump, then the ones queued behind it.
    pub cars: Vec<CarView>,
    pub last_sale: Option<SaleBody>,
}

impl Tile {
    fn new(fp: FpNumber) -> Tile {
        Tile {
            fp,
            online: None,
            activity: PumpActivity::Idle,
            nozzle: None,
            since_t: None,
            cars: Vec::new(),
            last_sale: None,
        }
    }
}

/// What the local API streams: the same facts as the tiles, one event each.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// A car was read well enough at a fuelling point (or an entrance camera: `fp` null).
    Arrival(ArrivalView),
    /// A fuelling point's tile changed.
    FpState(Tile),
    /// A sale, with the plate the matcher gave it or none.
    Sale(SaleBody),
}

impl ApiEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            ApiEvent::Arrival(_) => "arrival",
            ApiEvent::FpState(_) => "fp_state",
            ApiEvent::Sale(_) => "sale",
        }
    }
}

/// A record the console could not read (its payload is not the stream's `wire` type): logged
/// and skipped, the tiles stay as they were.
#[derive(Debug, thiserror::Error)]
#[error("{stream} record is not a {stream} payload: {source}")]
pub struct RecordError {
    pub stream: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// A sale as the sales page lists it: the sale, its record's id, and the latest word on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentSale {
    pub id: Uuid,
    pub sale: SaleBody,
    /// The latest correction (a person's outranks the matcher's).
    pub correction: Option<Correction>,
}

/// What a correction said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correction {
    /// `hq`, `staff` or `matcher`.
    pub source: &'static str,
    pub plate: Option<String>,
    pub by: Option<String>,
    pub t: UnixMillis,
}

impl Correction {
    fn of(c: SaleCorrection) -> (Uuid, Correction) {
        match c {
            SaleCorrection::Hq(c) => (
                c.sale_id,
                Correction {
                    source: "hq",
                    plate: Some(c.plate),
                    by: c.by,
                    t: c.t,
                },
            ),
            SaleCorrection::Staff(c) => (
                c.sale_id,
                Correction {
                    source: "staff",
                    plate: c.plate,
                    by: Some(c.by),
                    t: c.t,
                },
            ),
            SaleCorrection::Matcher(c) => (
                c.sale_id,
                Correction {
                    source: "matcher",
                    plate: c.plate,
                    by: Some(c.by),
                    t: c.t,
                },
            ),
        }
    }

    fn by_a_person(&self) -> bool {
        self.source != "matcher"
    }
}

/// Every fuelling point's tile, and the recent sales.
#[derive(Debug, Clone, Default)]
pub struct Forecourt {
    tiles: BTreeMap<FpNumber, Tile>,
    sales: VecDeque<RecentSale>,
    /// The latest word on each recent arrival (provisional or confirmed; retracted ones leave).
    arrivals: VecDeque<ArrivalView>,
    /// HQ's notes on plates, as the station last had them.
    plate_notes: Arc<PlateNotes>,
}

impl Forecourt {
    /// Tiles for `fps` before anything happened.
    pub fn with_fps(fps: impl IntoIterator<Item = FpNumber>) -> Forecourt {
        Forecourt {
            tiles: fps.into_iter().map(|fp| (fp, Tile::new(fp))).collect(),
            sales: VecDeque::new(),
            arrivals: VecDeque::new(),
            plate_notes: Arc::default(),
        }
    }

    /// HQ's notes as the station has them now: arrivals from now on carry them.
    pub fn set_plate_notes(&mut self, notes: Arc<PlateNotes>) {
        self.plate_notes = notes;
    }

    pub fn tiles(&self) -> impl Iterator<Item = &Tile> {
        self.tiles.values()
    }

    /// The latest sales, newest first.
    pub fn recent_sales(&self) -> impl Iterator<Item = &RecentSale> {
        self.sales.iter()
    }

    /// The latest arrivals, newest first: provisional or confirmed (a retracted one leaves).
    pub fn recent_arrivals(&self) -> impl Iterator<Item = &ArrivalView> {
        self.arrivals.iter()
    }

    fn note_arrival(&mut self, arrival: &ArrivalView) {
        let at = self
            .arrivals
            .iter()
            .position(|a| a.arrival.visit == arrival.arrival.visit);
        match (arrival.arrival.state, at) {
            (ArrivalState::Retracted, Some(at)) => {
                self.arrivals.remove(at);
            }
            (ArrivalState::Retracted, None) => {}
            // The confirmation keeps the place the provisional arrival had.
            (_, Some(at)) => self.arrivals[at] = arrival.clone(),
            (_, None) => {
                self.arrivals.push_front(arrival.clone());
                self.arrivals.truncate(RECENT_ARRIVALS);
            }
        }
    }

    /// Applies one record (`id`: its envelope id, where known); what the API streams because of
    /// it (nothing for streams the console does not show).
    pub fn apply(
        &mut self,
        stream: Stream,
        body: &serde_json::Value,
        id: Option<Uuid>,
    ) -> Result<Vec<ApiEvent>, RecordError> {
        let read = |source| RecordError {
            stream: stream.name(),
            source,
        };
        Ok(match stream {
            Stream::Nozzle => {
                let n: NozzleBody = serde::Deserialize::deserialize(body).map_err(read)?;
                let tile = self.tile(n.fp);
                tile.activity = match n.state {
                    NozzleState::Out => PumpActivity::NozzleOut,
                    NozzleState::In => PumpActivity::NozzleIn,
                };
                tile.nozzle = Some(n.nozzle);
                tile.since_t = Some(n.t);
                vec![ApiEvent::FpState(tile.clone())]
            }
            Stream::Pump => {
                let p: PumpBody = serde::Deserialize::deserialize(body).map_err(read)?;
                let tile = self.tile(p.fp);
                tile.online = Some(p.state == PumpState::Online);
                vec![ApiEvent::FpState(tile.clone())]
            }
            Stream::Sale => {
                let sale: SaleBody = serde::Deserialize::deserialize(body).map_err(read)?;
                let tile = self.tile(sale.fp);
                tile.activity = PumpActivity::Completed;
                tile.nozzle = Some(sale.nozzle);
                tile.since_t = Some(sale.completed_t);
                tile.last_sale = Some(sale.clone());
                let events = vec![
                    ApiEvent::Sale(sale.clone()),
                    ApiEvent::FpState(tile.clone()),
                ];
                if let Some(id) = id {
                    self.sales.push_front(RecentSale {
                        id,
                        sale,
                        correction: None,
                    });
                    self.sales.truncate(RECENT_SALES);
                }
                events
            }
            Stream::SaleCorrection => {
                let correction: SaleCorrection =
                    serde::Deserialize::deserialize(body).map_err(read)?;
                let (sale_id, correction) = Correction::of(correction);
                if let Some(recent) = self.sales.iter_mut().find(|s| s.id == sale_id) {
                    let person_first = recent
                        .correction
                        .as_ref()
                        .is_some_and(|c| c.by_a_person() && !correction.by_a_person());
                    if !person_first {
                        recent.correction = Some(correction);
                    }
                }
                Vec::new()
            }
            Stream::Arrival => {
                let arrival: Arrival = serde::Deserialize::deserialize(body).map_err(read)?;
                let note = self
                    .plate_notes
                    .note(&arrival.plate, arrival.t)
                    .map(str::to_owned);
                let view = ArrivalView {
                    arrival: arrival.clone(),
                    note: note.clone(),
                };
                self.note_arrival(&view);
                let mut events = vec![ApiEvent::Arrival(view)];
                if arrival.state == ArrivalState::Retracted {
                    events.extend(self.forget_car(&arrival.visit));
                    return Ok(events);
                }
                if let Some(fp) = arrival.fp {
                    let tile = self.tile(fp);
                    tile.cars
                        .retain(|c| c.arrived_t > arrival.t - CAR_FORGOTTEN_MS);
                    tile.cars.retain(|c| c.visit != arrival.visit);
                    tile.cars.push(CarView {
                        plate: arrival.plate,
                        confidence: arrival.confidence,
                        camera: arrival.camera,
                        arrived_t: arrival.first_seen_t,
                        provisional: arrival.state == ArrivalState::Provisional,
                        note,
                        last_read_t: arrival.t,
                        streamed_read_t: arrival.t,
                        visit: arrival.visit,
                    });
                    tile.cars.sort_by_key(|c| c.arrived_t);
                    tile.cars.truncate(MAX_CARS);
                    events.push(ApiEvent::FpState(tile.clone()));
                }
                events
            }
            Stream::Visit => {
                let visit: VisitRecord = serde::Deserialize::deserialize(body).map_err(read)?;
                self.forget_car(&visit.visit)
            }
            _ => Vec::new(),
        })
    }

    /// A frame's reads: each car on a tile whose plate one of them reads exactly was read then.
    /// The tiles whose cars' `last_read_t` moved on by [`READ_REFRESH_MS`] since it was last
    /// streamed, for the API.
    pub fn observe_reads(&mut self, frame: &FramePlates) -> Vec<ApiEvent> {
        let mut events = Vec::new();
        for tile in self.tiles.values_mut() {
            let mut moved = false;
            for car in &mut tile.cars {
                if frame.plates.iter().any(|p| p.text == car.plate) {
                    car.last_read_t = car.last_read_t.max(frame.t);
                    if car.last_read_t - car.streamed_read_t >= READ_REFRESH_MS {
                        car.streamed_read_t = car.last_read_t;
                        moved = true;
                    }
                }
            }
            if moved {
                events.push(ApiEvent::FpState(tile.clone()));
            }
        }
        events
    }

    /// The car of `visit` leaves every tile it is on; those tiles, changed.
    fn forget_car(&mut self, visit: &str) -> Vec<ApiEvent> {
        let mut events = Vec::new();
        for tile in self.tiles.values_mut() {
            let before = tile.cars.len();
            tile.cars.retain(|c| c.visit != visit);
            if tile.cars.len() != before {
                events.push(ApiEvent::FpState(tile.clone()));
            }
        }
        events
    }

    fn tile(&mut self, fp: FpNumber) -> &mut Tile {
        self.tiles.entry(fp).or_insert_with(|| Tile::new(fp))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nozzle(fp: u8, state: &str, t: i64) -> serde_json::Value {
        json!({"t": t, "fp": fp, "nozzle": 1, "state": state})
    }

    fn sale(fp: u8, plate: Option<&str>) -> serde_json::Value {
        json!({"fp": fp, "nozzle": 1, "grade": "95#", "volume": "35.21", "amount": "292.95",
               "price": "8.32", "nozzle_out_t": 1000, "nozzle_in_t": 9000, "completed_t": 9500,
               "plate": plate, "plate_confidence": if plate.is_some() { 0.987 } else { 0.0 },
               "match_reason": "test"})
    }

    fn arrival(visit: &str, fp: Option<u8>, plate: &str, t: i64) -> serde_json::Value {
        json!({"visit": visit, "t": t, "plate": plate, "confidence": 0.99, "camera": "cam1",
               "fp": fp, "first_seen_t": t - 500, "reads": 4})
    }

    #[test]
    fn a_fill_goes_nozzle_out_nozzle_in_completed_with_its_sale() {
        let mut f = Forecourt::with_fps([1, 2]);
        assert_eq!(f.tiles().count(), 2);
        let events = f
            .apply(Stream::Nozzle, &nozzle(1, "out", 1000), None)
            .unwrap();
        assert!(
            matches!(&events[..], [ApiEvent::FpState(t)] if t.activity == PumpActivity::NozzleOut && t.since_t == Some(1000))
        );
        f.apply(Stream::Nozzle, &nozzle(1, "in", 9000), None)
            .unwrap();
        assert_eq!(f.tiles[&1].activity, PumpActivity::NozzleIn);
        let events = f
            .apply(Stream::Sale, &sale(1, Some("苏E05EV8")), Some(Uuid::nil()))
            .unwrap();
        assert_eq!(events[0].name(), "sale");
        let tile = &f.tiles[&1];
        assert_eq!(tile.activity, PumpActivity::Completed);
        let last = tile.last_sale.as_ref().unwrap();
        assert_eq!(last.plate.as_deref(), Some("苏E05EV8"));
        assert_eq!(last.volume.to_string(), "35.21");
        assert_eq!(f.tiles[&2].activity, PumpActivity::Idle);
    }

    #[test]
    fn cars_queue_by_arrival_and_leave_when_their_visit_ends() {
        let mut f = Forecourt::default();
        f.apply(
            Stream::Arrival,
            &arrival("v2", Some(3), "京A12345", 20_000),
            None,
        )
        .unwrap();
        let events = f
            .apply(
                Stream::Arrival,
                &arrival("v1", Some(3), "苏E05EV8", 10_000),
                None,
            )
            .unwrap();
        assert_eq!(events.len(), 2);
        let plates: Vec<_> = f.tiles[&3].cars.iter().map(|c| c.plate.as_str()).collect();
        assert_eq!(plates, ["苏E05EV8", "京A12345"]);
        // Read again (a later arrival of the same visit): still one car.
        f.apply(
            Stream::Arrival,
            &arrival("v1", Some(3), "苏E05EV8", 11_000),
            None,
        )
        .unwrap();
        assert_eq!(f.tiles[&3].cars.len(), 2);
        let visit = json!({"visit": "v1", "plate": "苏E05EV8", "fp": 3, "arrival_t": 10_000,
            "nozzle_out_t": null, "nozzle_in_t": null, "departure_t": 30_000,
            "waiting_ms": null, "service_ms": null, "sales": []});
        let events = f.apply(Stream::Visit, &visit, None).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(f.tiles[&3].cars.len(), 1);
        assert_eq!(f.tiles[&3].cars[0].plate, "京A12345");
    }

    #[test]
    fn a_provisional_car_is_shown_confirmed_or_taken_away() {
        let mut f = Forecourt::default();
        let mut said = arrival("v1", Some(1), "苏E05EV8", 10_000);
        said["state"] = json!("provisional");
        f.apply(Stream::Arrival, &said, None).unwrap();
        assert!(f.tiles[&1].cars[0].provisional);
        f.apply(
            Stream::Arrival,
            &arrival("v1", Some(1), "苏E05EV8", 11_000),
            None,
        )
        .unwrap();
        assert_eq!(f.tiles[&1].cars.len(), 1);
        assert!(!f.tiles[&1].cars[0].provisional);
        let mut wrong = arrival("v2", Some(1), "苏E05EV9", 12_000);
        wrong["state"] = json!("provisional");
        f.apply(Stream::Arrival, &wrong, None).unwrap();
        assert_eq!(f.tiles[&1].cars.len(), 2);
        wrong["state"] = json!("retracted");
        let events = f.apply(Stream::Arrival, &wrong, None).unwrap();
        assert_eq!(
            events.len(),
            2,
            "the retraction, and the tile without the car"
        );
        assert_eq!(f.tiles[&1].cars.len(), 1);
        assert_eq!(f.tiles[&1].cars[0].plate, "苏E05EV8");
        // The ticker: the confirmed arrival in its place, the retracted one gone.
        let ticker: Vec<_> = f
            .recent_arrivals()
            .map(|a| (a.arrival.plate.as_str(), a.arrival.state))
            .collect();
        assert_eq!(ticker, [("苏E05EV8", ArrivalState::Confirmed)]);
    }

    #[test]
    fn an_entrance_arrival_is_streamed_but_sits_at_no_pump() {
        let mut f = Forecourt::default();
        let events = f
            .apply(
                Stream::Arrival,
                &arrival("v1", None, "苏E05EV8", 10_000),
                None,
            )
            .unwrap();
        assert!(matches!(&events[..], [ApiEvent::Arrival(_)]));
        assert_eq!(f.tiles().count(), 0);
    }

    #[test]
    fn a_car_whose_visit_never_closed_is_forgotten() {
        let mut f = Forecourt::default();
        f.apply(
            Stream::Arrival,
            &arrival("old", Some(1), "苏E05EV8", 0),
            None,
        )
        .unwrap();
        f.apply(
            Stream::Arrival,
            &arrival("new", Some(1), "京A12345", CAR_FORGOTTEN_MS + 1000),
            None,
        )
        .unwrap();
        assert_eq!(f.tiles[&1].cars.len(), 1);
    }

    #[test]
    fn pump_state_and_unshown_streams() {
        let mut f = Forecourt::default();
        f.apply(
            Stream::Pump,
            &json!({"t": 5, "fp": 2, "state": "offline"}),
            None,
        )
        .unwrap();
        assert_eq!(f.tiles[&2].online, Some(false));
        assert!(f
            .apply(Stream::Hourly, &json!({}), None)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_record_of_the_wrong_shape_is_an_error_and_changes_nothing() {
        let mut f = Forecourt::with_fps([1]);
        let err = f
            .apply(Stream::Nozzle, &json!({"fp": 1, "state": "sideways"}), None)
            .unwrap_err();
        assert_eq!(err.stream, "nozzle");
        assert_eq!(f.tiles[&1], Tile::new(1));
    }

    #[test]
    fn sales_are_listed_newest_first_with_the_latest_word_a_persons_first() {
        let mut f = Forecourt::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        f.apply(Stream::Sale, &sale(1, None), Some(a)).unwrap();
        f.apply(Stream::Sale, &sale(2, Some("京A12345")), Some(b))
            .unwrap();
        // Without an id (not a released record) a sale is shown on its tile only.
        f.apply(Stream::Sale, &sale(2, None), None).unwrap();
        let ids: Vec<_> = f.recent_sales().map(|s| s.id).collect();
        assert_eq!(ids, [b, a]);
        let staff =
            json!({"source": "staff", "t": 5, "sale_id": a, "plate": "苏E05EV8", "by": "anna"});
        f.apply(Stream::SaleCorrection, &staff, None).unwrap();
        let matcher = json!({"source": "matcher", "t": 6, "sale_id": a, "plate": null,
            "plate_confidence": 0.0, "match_reason": "x", "by": "matcher"});
        f.apply(Stream::SaleCorrection, &matcher, None).unwrap();
        let corrected = f.recent_sales().find(|s| s.id == a).unwrap();
        let c = corrected.correction.as_ref().unwrap();
        assert_eq!(
            (c.source, c.plate.as_deref(), c.by.as_deref()),
            ("staff", Some("苏E05EV8"), Some("anna"))
        );
        for n in 0..RECENT_SALES as u128 + 5 {
            f.apply(Stream::Sale, &sale(1, None), Some(Uuid::from_u128(10 + n)))
                .unwrap();
        }
        assert_eq!(f.recent_sales().count(), RECENT_SALES);
    }

    #[test]
    fn the_api_event_names_its_type() {
        let mut f = Forecourt::default();
        let events = f.apply(Stream::Nozzle, &nozzle(4, "out", 1), None).unwrap();
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["type"], "fp_state");
        assert_eq!(json["fp"], 4);
        assert_eq!(json["activity"], "nozzle_out");
    }

    #[test]
    fn reads_of_a_cars_plate_say_when_it_was_last_seen_a_tile_event_every_5_s() {
        let mut f = Forecourt::with_fps([3]);
        f.apply(
            Stream::Arrival,
            &arrival("v2", Some(3), "京A12345", 20_000),
            None,
        )
        .unwrap();
        let frame = |t: i64, text: &str| FramePlates {
            t,
            camera: "cam1".into(),
            plates: vec![forecourt_events::PlateRead {
                text: text.into(),
                confidence: 0.9,
                bbox: [0.1, 0.1, 0.2, 0.2],
            }],
        };
        assert!(
            f.observe_reads(&frame(21_000, "京A12345")).is_empty(),
            "not 5 s on yet"
        );
        assert!(
            f.observe_reads(&frame(30_000, "沪B00001")).is_empty(),
            "another plate"
        );
        let events = f.observe_reads(&frame(25_000, "京A12345"));
        match &events[..] {
            [ApiEvent::FpState(tile)] => assert_eq!(tile.cars[0].last_read_t, 25_000),
            other => panic!("{other:?}"),
        }
        // An older frame (another camera, late) never moves it back.
        assert!(f.observe_reads(&frame(22_000, "京A12345")).is_empty());
        assert_eq!(f.tiles().next().unwrap().cars[0].last_read_t, 25_000);
    }
}
