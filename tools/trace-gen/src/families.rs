//! Setting families for the domain-randomised generator: each family is a distribution over
//! station geometry, customer behaviour and plate-reader quality. A station (one seed) draws its
//! values from its family's ranges, and each camera and car draws its own again, so no two
//! stations of a family look alike and a matcher tuned on some families can be measured on the
//! held-out ones it never saw.

/// A closed range `(low, high)` a value is drawn from uniformly.
pub type Span = (f64, f64);

/// One family of stations. Ranges are drawn per station unless the field says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    /// Never to be used for tuning: these families measure how well the matcher generalises.
    pub held_out: bool,
    pub about: &'static str,
    /// Cases (see [`crate::CASES`]) a few hundred sales of this family must contain; the tests
    /// hold the generator to it.
    pub expected_cases: &'static [&'static str],

    // Geometry (metres, degrees).
    pub islands: (usize, usize),
    /// Lane centre from the island's centre line.
    pub lane_offset_m: Span,
    /// Between the facing lanes of two neighbouring islands.
    pub lane_gap_m: Span,
    /// Chance that the station has one camera per pair of facing lanes (between islands) rather
    /// than one per island.
    pub lane_pair_cameras: f64,
    /// Chance per bay of an extra camera of its own.
    pub extra_camera: f64,
    /// Chance per camera that it stands behind the stop and reads rear plates.
    pub rear_camera: f64,
    /// Per camera: along the lane from the stop line.
    pub camera_distance_m: Span,
    pub camera_height_m: Span,
    /// Per camera: sideways from the lanes it watches.
    pub camera_side_m: Span,
    pub camera_hfov_deg: Span,
    /// Per camera: how far behind the stop line it is aimed (it sees more of the queue).
    pub camera_aim_back_m: Span,
    pub camera_aim_jitter_deg: f64,
    pub image_width_px: Span,
    /// Where cars stop along the lane, standard deviation.
    pub stop_spread_m: Span,
    /// Front of a queued car to the front of the car ahead.
    pub queue_gap_m: Span,

    // Hand-drawn zones, in plate positions around the stop.
    pub zone_back_m: Span,
    pub zone_front_m: Span,
    pub zone_half_width_m: Span,
    /// Hand jitter of each zone point, as a share of the zone's size.
    pub zone_jitter: Span,
    /// Chance per zone that it was drawn too small (cars stop partly outside).
    pub zone_too_small: f64,
    /// Chance per camera and bay it sees well (but was not placed for) of a zone there too.
    pub extra_zone: f64,

    // Behaviour.
    /// Mean time between arrivals at one bay, s.
    pub arrival_gap_s: Span,
    /// Share of the time the station is in a rush (arrivals four times as often).
    pub rush_share: Span,
    pub motorbike: Span,
    pub jerry_can: Span,
    pub double_sale: Span,
    pub early_nozzle: Span,
    pub cross_side: Span,
    pub off_zone: Span,
    /// Share of cars that belong to a fleet of lookalike plates.
    pub fleet: Span,
    /// Chance per car and camera of a long occlusion (a person, a hose, a van).
    pub occlusion: Span,
    pub occlusion_s: Span,

    // Cameras and the plate reader (per camera).
    pub outages_per_hour: Span,
    pub frame_drop: Span,
    pub fps: Span,
    /// Timestamp jitter as a share of the frame period.
    pub frame_jitter: Span,
    /// Per-frame chance that a clearly visible, still plate is detected.
    pub detect_rate: Span,
    /// Per-character misread chance for a large, still plate.
    pub char_error: Span,
    /// Added to every read's confidence (over- or under-confident readers).
    pub conf_bias: Span,
    pub conf_noise: Span,
    /// Garbage reads (signs, wheels, text on vans) per camera per minute.
    pub garbage_per_min: Span,

    // Plates (per car).
    /// Chance a plate has one smeared character read three ways.
    pub smear: Span,
    /// Chance a plate is never read exactly (a character always wrong).
    pub unreadable: Span,
    /// Chance a plate is dirty: every character misreads more often.
    pub dirty: Span,
}

/// What every family shares unless it says otherwise: wide ranges around a typical station.
const BASE: Family = Family {
    name: "",
    held_out: false,
    about: "",
    expected_cases: &["normal"],
    islands: (1, 4),
    lane_offset_m: (1.8, 2.5),
    lane_gap_m: (2.8, 4.2),
    lane_pair_cameras: 0.3,
    extra_camera: 0.15,
    rear_camera: 0.2,
    camera_distance_m: (4.0, 11.0),
    camera_height_m: (2.5, 5.0),
    camera_side_m: (-1.5, 1.5),
    camera_hfov_deg: (50.0, 95.0),
    camera_aim_back_m: (-0.5, 3.0),
    camera_aim_jitter_deg: 4.0,
    image_width_px: (1280.0, 2560.0),
    stop_spread_m: (0.2, 0.8),
    queue_gap_m: (5.0, 6.5),
    zone_back_m: (0.5, 6.0),
    zone_front_m: (0.4, 2.0),
    zone_half_width_m: (0.8, 1.6),
    zone_jitter: (0.01, 0.06),
    zone_too_small: 0.1,
    extra_zone: 0.2,
    arrival_gap_s: (60.0, 400.0),
    rush_share: (0.0, 0.3),
    motorbike: (0.0, 0.06),
    jerry_can: (0.0, 0.05),
    double_sale: (0.02, 0.08),
    early_nozzle: (0.05, 0.3),
    cross_side: (0.0, 0.04),
    off_zone: (0.0, 0.04),
    fleet: (0.0, 0.06),
    occlusion: (0.03, 0.25),
    occlusion_s: (15.0, 120.0),
    outages_per_hour: (0.0, 2.0),
    frame_drop: (0.0, 0.08),
    fps: (2.0, 8.0),
    frame_jitter: (0.0, 0.3),
    detect_rate: (0.5, 0.95),
    char_error: (0.004, 0.03),
    conf_bias: (-0.08, 0.04),
    conf_noise: (0.02, 0.08),
    garbage_per_min: (0.0, 2.0),
    smear: (0.0, 0.08),
    unreadable: (0.01, 0.05),
    dirty: (0.02, 0.1),
};

/// Every family, tuning ones first. Held out: `far_camera`, `sloppy_zones`, `fleet_depot`,
/// `flaky_cameras` (4 of 10).
pub const FAMILIES: [Family; 10] = [
    Family {
        name: "compact",
        about: "one or two islands, a camera per island close to the pumps",
        expected_cases: &["normal", "overlap", "no_car", "double_sale", "early_nozzle"],
        islands: (1, 2),
        lane_pair_cameras: 0.0,
        camera_distance_m: (3.0, 7.0),
        ..BASE
    },
    Family {
        name: "wide_forecourt",
        about: "three or four islands, cameras mostly per pair of facing lanes, wide lenses",
        expected_cases: &["normal", "overlap", "double_sale"],
        islands: (3, 4),
        lane_pair_cameras: 0.7,
        camera_hfov_deg: (70.0, 110.0),
        camera_distance_m: (5.0, 12.0),
        ..BASE
    },
    Family {
        name: "steep_camera",
        about: "cameras high on the canopy close to the stop, looking steeply down",
        expected_cases: &["overlap", "queue", "leaving_in_zone"],
        camera_height_m: (5.0, 8.0),
        camera_distance_m: (2.5, 5.0),
        camera_hfov_deg: (70.0, 110.0),
        ..BASE
    },
    Family {
        name: "night",
        about: "dark: slow frames, more misreads, garbage and unreadable plates, shaky confidence",
        expected_cases: &["normal", "unreadable", "no_car"],
        fps: (2.0, 5.0),
        detect_rate: (0.3, 0.8),
        char_error: (0.02, 0.07),
        conf_bias: (-0.12, 0.06),
        conf_noise: (0.05, 0.12),
        garbage_per_min: (1.0, 6.0),
        unreadable: (0.04, 0.12),
        dirty: (0.05, 0.2),
        ..BASE
    },
    Family {
        name: "rush",
        about: "busy: queues standing inside zones, cars leaving while the next pulls in",
        expected_cases: &["queue", "queue_in_zone", "leaving_in_zone", "overlap"],
        arrival_gap_s: (25.0, 90.0),
        rush_share: (0.2, 0.6),
        zone_back_m: (3.0, 7.0),
        early_nozzle: (0.15, 0.4),
        ..BASE
    },
    Family {
        name: "mixed",
        about: "every setting at its widest",
        expected_cases: &["normal", "overlap", "queue", "occluded", "early_nozzle"],
        lane_pair_cameras: 0.5,
        extra_camera: 0.3,
        rear_camera: 0.35,
        camera_distance_m: (2.5, 15.0),
        camera_height_m: (2.2, 7.5),
        camera_hfov_deg: (35.0, 110.0),
        arrival_gap_s: (30.0, 600.0),
        cross_side: (0.0, 0.08),
        off_zone: (0.0, 0.08),
        fleet: (0.0, 0.15),
        outages_per_hour: (0.0, 5.0),
        frame_drop: (0.0, 0.2),
        char_error: (0.003, 0.06),
        ..BASE
    },
    Family {
        name: "far_camera",
        held_out: true,
        about: "cameras far down the lanes with long lenses: small plates, a deep queue in view",
        expected_cases: &["normal", "overlap", "queue"],
        camera_distance_m: (10.0, 18.0),
        camera_height_m: (3.0, 7.0),
        camera_hfov_deg: (25.0, 50.0),
        image_width_px: (1920.0, 3840.0),
        ..BASE
    },
    Family {
        name: "sloppy_zones",
        held_out: true,
        about: "zones drawn in a hurry (too small, far behind the stop line), off-zone stops and \
                hoses across the island",
        expected_cases: &["normal", "off_zone", "cross_side"],
        zone_back_m: (0.0, 8.0),
        zone_front_m: (0.0, 3.0),
        zone_half_width_m: (0.4, 2.0),
        zone_jitter: (0.04, 0.15),
        zone_too_small: 0.35,
        cross_side: (0.05, 0.12),
        off_zone: (0.05, 0.15),
        stop_spread_m: (0.4, 1.5),
        ..BASE
    },
    Family {
        name: "fleet_depot",
        held_out: true,
        about: "fleet vans with plates one character apart, double sales, jerry cans and bikes",
        expected_cases: &["normal", "lookalike", "double_sale", "no_car"],
        fleet: (0.15, 0.35),
        double_sale: (0.1, 0.25),
        jerry_can: (0.05, 0.15),
        motorbike: (0.05, 0.15),
        ..BASE
    },
    Family {
        name: "flaky_cameras",
        held_out: true,
        about: "dark spells, dropped frames, slow and jittery cameras, long occlusions, rear views",
        expected_cases: &["normal", "outage", "occluded"],
        outages_per_hour: (3.0, 12.0),
        frame_drop: (0.1, 0.35),
        fps: (2.0, 4.0),
        frame_jitter: (0.2, 0.45),
        occlusion: (0.2, 0.5),
        rear_camera: 0.5,
        ..BASE
    },
];

/// The family called `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}
