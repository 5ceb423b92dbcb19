//! A drawn station: islands with a bay on each side, pinhole cameras and hand-drawn zones.
//!
//! World coordinates are metres: `x` across the forecourt, `y` along the lanes (cars drive
//! towards +y), `z` up. Bay `2i` is on the left of island `i`, bay `2i+1` on its right; FP numbers
//! are bay index + 1. A front camera stands ahead of the stop line and reads front plates; a rear
//! camera stands behind the queue and reads rear plates. Plate boxes come from projecting the
//! plate's corners, so a car further away reads smaller and (for a front camera looking down)
//! higher in the image, with no size or position given by hand.

use forecourt_events::FpNumber;
use matcher::{FpLayout, Layout, Zone};

use crate::families::{Family, Span};
use seeded_rng::Rng;

pub type Point = [f64; 3];

/// Car plates are 440 x 140 mm; motorbikes carry a small one at the rear only.
pub const CAR_PLATE_M: (f64, f64) = (0.44, 0.14);
pub const MOTORBIKE_PLATE_M: (f64, f64) = (0.22, 0.14);
/// The detector finds no plate narrower than this.
pub const MIN_PLATE_PX: f64 = 14.0;

/// Image aspect (width / height) of every camera.
const ASPECT: f64 = 16.0 / 9.0;

pub fn draw(rng: &mut Rng, span: Span) -> f64 {
    rng.range(span.0, span.1)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bay {
    pub fp: FpNumber,
    pub island: usize,
    /// Lane centre.
    pub x: f64,
    /// Where the front of a car stands when it stops right.
    pub stop_y: f64,
}

/// Which plates a camera reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facing {
    /// Ahead of the stop line, looking back along the lane at front plates.
    Front,
    /// Behind the queue, looking along the lane at rear plates.
    Rear,
}

/// A pinhole camera plus the quality of the plate reader on its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub name: String,
    pub position: Point,
    forward: Point,
    right: Point,
    down: Point,
    /// Focal lengths in image widths and image heights.
    focal_x: f64,
    focal_y: f64,
    pub facing: Facing,
    pub image_width_px: f64,
    /// The bays it was placed for.
    pub watches: Vec<usize>,
    pub fps: f64,
    pub frame_jitter: f64,
    pub frame_drop: f64,
    pub outages_per_hour: f64,
    pub detect_rate: f64,
    pub char_error: f64,
    pub conf_bias: f64,
    pub conf_noise: f64,
    pub garbage_per_min: f64,
}

fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: Point, b: Point) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: Point, b: Point) -> Point {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalised(a: Point) -> Point {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

fn rotate(v: Point, axis: Point, angle: f64) -> Point {
    // Rodrigues, axis of unit length.
    let (s, c) = angle.sin_cos();
    let k = cross(axis, v);
    let d = dot(axis, v) * (1.0 - c);
    [
        v[0] * c + k[0] * s + axis[0] * d,
        v[1] * c + k[1] * s + axis[1] * d,
        v[2] * c + k[2] * s + axis[2] * d,
    ]
}

impl Camera {
    /// A camera at `position` aimed at `target`, then turned by the given yaw, pitch and roll
    /// (radians): nobody mounts a camera exactly where they meant to.
    fn aimed(position: Point, target: Point, hfov_deg: f64, turn: [f64; 3]) -> Camera {
        let up = [0.0, 0.0, 1.0];
        let mut forward = normalised(sub(target, position));
        forward = rotate(forward, up, turn[0]);
        let right = normalised(cross(forward, up));
        forward = normalised(rotate(forward, right, turn[1]));
        let right = normalised(rotate(cross(forward, up), forward, turn[2]));
        let down = cross(forward, right);
        let focal_x = 0.5 / (hfov_deg.to_radians() / 2.0).tan();
        Camera {
            name: String::new(),
            position,
            forward,
            right: normalised(right),
            down: normalised(down),
            focal_x,
            focal_y: focal_x * ASPECT,
            facing: Facing::Front,
            image_width_px: 1920.0,
            watches: Vec::new(),
            fps: 4.0,
            frame_jitter: 0.0,
            frame_drop: 0.0,
            outages_per_hour: 0.0,
            detect_rate: 0.9,
            char_error: 0.01,
            conf_bias: 0.0,
            conf_noise: 0.05,
            garbage_per_min: 0.0,
        }
    }

    /// Normalised image position and depth of a world point; `None` behind or right at the lens.
    pub fn project(&self, p: Point) -> Option<(f64, f64, f64)> {
        let d = sub(p, self.position);
        let depth = dot(d, self.forward);
        if depth < 0.5 {
            return None;
        }
        let x = 0.5 + self.focal_x * dot(d, self.right) / depth;
        let y = 0.5 + self.focal_y * dot(d, self.down) / depth;
        Some((x, y, depth))
    }

    /// Whether a plate facing +y (`front`) or -y sits with its face towards this camera.
    pub fn faces(&self, plate: Point, front: bool) -> bool {
        let ahead = self.position[1] - plate[1];
        if front {
            ahead > 0.8
        } else {
            ahead < -0.8
        }
    }

    /// The box `[x0, y0, x1, y1]` of an upright plate (facing along y) centred at `centre`, and
    /// its depth; `None` when any corner is behind the lens.
    pub fn plate_box(&self, centre: Point, size: (f64, f64)) -> Option<([f64; 4], f64)> {
        let (w, h) = (size.0 / 2.0, size.1 / 2.0);
        let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for (dx, dz) in [(-w, -h), (w, -h), (-w, h), (w, h)] {
            let (x, y, _) = self.project([centre[0] + dx, centre[1], centre[2] + dz])?;
            bbox = [
                bbox[0].min(x),
                bbox[1].min(y),
                bbox[2].max(x),
                bbox[3].max(y),
            ];
        }
        let (_, _, depth) = self.project(centre)?;
        Some((bbox, depth))
    }

    /// The image rectangle a box-shaped body covers (the bounding box of its corners), and the
    /// depth of its nearest corner.
    pub fn body_rect(&self, low: Point, high: Point) -> Option<([f64; 4], f64)> {
        let mut rect = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        let mut nearest = f64::MAX;
        for i in 0..8 {
            let corner = [
                if i & 1 == 0 { low[0] } else { high[0] },
                if i & 2 == 0 { low[1] } else { high[1] },
                if i & 4 == 0 { low[2] } else { high[2] },
            ];
            let (x, y, depth) = self.project(corner)?;
            rect = [
                rect[0].min(x),
                rect[1].min(y),
                rect[2].max(x),
                rect[3].max(y),
            ];
            nearest = nearest.min(depth);
        }
        Some((rect, nearest))
    }
}

/// One hand-drawn zone: the polygon the matcher gets, for `bay`'s FP on camera `camera`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnZone {
    pub camera: usize,
    pub bay: usize,
    pub polygon: Vec<[f32; 2]>,
    pub too_small: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub bays: Vec<Bay>,
    pub cameras: Vec<Camera>,
    pub zones: Vec<DrawnZone>,
    /// Plate height above the ground (car plates; each car varies it a little).
    pub plate_z: f64,
    pub car_length_m: f64,
    pub queue_gap_m: f64,
}

impl Station {
    /// The layout the matcher is given: every FP with its zones.
    pub fn layout(&self) -> Layout {
        Layout {
            fps: self
                .bays
                .iter()
                .enumerate()
                .map(|(b, bay)| FpLayout {
                    fp: bay.fp,
                    zones: self
                        .zones
                        .iter()
                        .filter(|z| z.bay == b)
                        .map(|z| Zone {
                            camera: self.cameras[z.camera].name.clone(),
                            polygon: z.polygon.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The bay on the other side of `bay`'s island.
    pub fn island_neighbour(bay: usize) -> usize {
        bay ^ 1
    }

    /// Whether a plate centre at image point (x, y) on `camera` falls in one of `bay`'s zones.
    pub fn in_zone_of(&self, camera: usize, bay: usize, x: f64, y: f64) -> bool {
        self.zones
            .iter()
            .any(|z| z.camera == camera && z.bay == bay && contains(&z.polygon, x as f32, y as f32))
    }

    /// The cameras with at least one zone of `bay`.
    pub fn cameras_of(&self, bay: usize) -> Vec<usize> {
        let mut cameras: Vec<usize> = self
            .zones
            .iter()
            .filter(|z| z.bay == bay)
            .map(|z| z.camera)
            .collect();
        cameras.sort_unstable();
        cameras.dedup();
        cameras
    }

    /// Where the plate of a car standing right at `bay`'s stop is, for a camera facing `facing`.
    pub fn stop_plate(&self, bay: usize, facing: Facing) -> Point {
        let b = &self.bays[bay];
        match facing {
            Facing::Front => [b.x, b.stop_y, self.plate_z],
            Facing::Rear => [b.x, b.stop_y - self.car_length_m, self.plate_z],
        }
    }
}

/// Even-odd test, the same as `matcher::Zone::contains`.
pub fn contains(polygon: &[[f32; 2]], x: f32, y: f32) -> bool {
    Zone {
        camera: String::new(),
        polygon: polygon.to_vec(),
    }
    .contains(x, y)
}

/// Draws a station from `family`.
pub fn draw_station(family: &Family, rng: &mut Rng) -> Station {
    let islands = family.islands.0 + rng.below(family.islands.1 - family.islands.0 + 1);
    let lane_offset = draw(rng, family.lane_offset_m);
    let mut bays = Vec::new();
    let mut island_x = 0.0;
    for island in 0..islands {
        if island > 0 {
            island_x += 2.0 * lane_offset + draw(rng, family.lane_gap_m);
        }
        // Dispensers are not all in one line.
        let island_stop = rng.normal() * 0.6;
        for side in [-1.0, 1.0] {
            bays.push(Bay {
                fp: bays.len() as FpNumber + 1,
                island,
                x: island_x + side * lane_offset,
                stop_y: island_stop + rng.normal() * 0.2,
            });
        }
    }
    let mut station = Station {
        bays,
        cameras: Vec::new(),
        zones: Vec::new(),
        plate_z: rng.range(0.4, 0.6),
        car_length_m: rng.range(4.3, 4.9),
        queue_gap_m: draw(rng, family.queue_gap_m),
    };
    // Which bays each camera is placed for.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let bay_count = station.bays.len();
    if rng.chance(family.lane_pair_cameras) && islands > 1 {
        groups.push(vec![0]);
        let mut b = 1;
        while b + 1 < bay_count {
            groups.push(vec![b, b + 1]);
            b += 2;
        }
        groups.push(vec![bay_count - 1]);
    } else {
        for island in 0..islands {
            groups.push(vec![2 * island, 2 * island + 1]);
        }
    }
    for b in 0..bay_count {
        if rng.chance(family.extra_camera) {
            groups.push(vec![b]);
        }
    }
    for watches in groups {
        let mut camera = place_camera(&station, &watches, family, rng);
        camera.name = format!("cam{}", station.cameras.len() + 1);
        station.cameras.push(camera);
    }
    // Zones: every camera for the bays it was placed for, sometimes for other bays it sees well.
    for c in 0..station.cameras.len() {
        for b in 0..bay_count {
            let placed_for = station.cameras[c].watches.contains(&b);
            let wanted = placed_for || (sees_well(&station, c, b) && rng.chance(family.extra_zone));
            if !wanted {
                continue;
            }
            let zone = draw_zone(&station, c, b, family, rng);
            station.zones.push(zone);
        }
    }
    station
}

/// Whether camera `c` sees a car stopped at `bay` well away from the image edge and large enough.
fn sees_well(station: &Station, c: usize, bay: usize) -> bool {
    let camera = &station.cameras[c];
    let plate = station.stop_plate(bay, camera.facing);
    if !camera.faces(plate, camera.facing == Facing::Front) {
        return false;
    }
    camera.plate_box(plate, CAR_PLATE_M).is_some_and(|(b, _)| {
        let (x, y) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
        (0.1..0.9).contains(&x)
            && (0.1..0.9).contains(&y)
            && (b[2] - b[0]) * camera.image_width_px >= 40.0
    })
}

/// Draws a camera for `watches` until every watched bay's stop is well in view.
fn place_camera(station: &Station, watches: &[usize], family: &Family, rng: &mut Rng) -> Camera {
    let centre_x = watches.iter().map(|&b| station.bays[b].x).sum::<f64>() / watches.len() as f64;
    let stop_y =
        watches.iter().map(|&b| station.bays[b].stop_y).sum::<f64>() / watches.len() as f64;
    let facing = if rng.chance(family.rear_camera) {
        Facing::Rear
    } else {
        Facing::Front
    };
    let image_width_px = draw(rng, family.image_width_px);
    let plate_z = station.plate_z;
    let mut last = None;
    for attempt in 0..60 {
        // Late attempts move towards a plain, central mount so that placement always ends.
        let wildness = if attempt < 40 { 1.0 } else { 0.3 };
        let distance = draw(rng, family.camera_distance_m);
        let height = draw(rng, family.camera_height_m);
        let side = draw(rng, family.camera_side_m) * wildness;
        let hfov = draw(rng, family.camera_hfov_deg);
        let aim_back = draw(rng, family.camera_aim_back_m) * wildness;
        let jitter = family.camera_aim_jitter_deg.to_radians() * wildness;
        let turn = [
            rng.normal() * jitter,
            rng.normal() * jitter,
            rng.normal() * jitter * 0.5,
        ];
        let (position, target) = match facing {
            Facing::Front => (
                [centre_x + side, stop_y + distance, height],
                [centre_x, stop_y - aim_back, plate_z],
            ),
            Facing::Rear => {
                // Behind the first queued car, or it would stand under the lens.
                let rear = stop_y - station.car_length_m;
                (
                    [
                        centre_x + side,
                        rear - station.queue_gap_m - distance,
                        height,
                    ],
                    [centre_x, rear - aim_back, plate_z],
                )
            }
        };
        let mut camera = Camera::aimed(position, target, hfov, turn);
        camera.facing = facing;
        camera.image_width_px = image_width_px;
        camera.watches = watches.to_vec();
        let fits = watches.iter().all(|&b| {
            let plate = station.stop_plate(b, facing);
            camera.plate_box(plate, CAR_PLATE_M).is_some_and(|(bx, _)| {
                let (x, y) = ((bx[0] + bx[2]) / 2.0, (bx[1] + bx[3]) / 2.0);
                (0.08..0.92).contains(&x)
                    && (0.08..0.92).contains(&y)
                    && (bx[2] - bx[0]) * image_width_px >= 28.0
            })
        });
        if fits {
            last = Some(camera);
            break;
        }
        last = Some(camera);
    }
    let mut camera = last.expect("at least one attempt");
    camera.fps = draw(rng, family.fps);
    camera.frame_jitter = draw(rng, family.frame_jitter);
    camera.frame_drop = draw(rng, family.frame_drop);
    camera.outages_per_hour = draw(rng, family.outages_per_hour);
    camera.detect_rate = draw(rng, family.detect_rate);
    camera.char_error = draw(rng, family.char_error);
    camera.conf_bias = draw(rng, family.conf_bias);
    camera.conf_noise = draw(rng, family.conf_noise);
    camera.garbage_per_min = draw(rng, family.garbage_per_min);
    camera
}

/// A zone as a person draws it: a rough quadrilateral around where plates stand at the stop,
/// often reaching back over the queue, sometimes too small, corners off by a hand's jitter and
/// an extra point or two along the edges.
fn draw_zone(station: &Station, c: usize, bay: usize, family: &Family, rng: &mut Rng) -> DrawnZone {
    let camera = &station.cameras[c];
    let plate = station.stop_plate(bay, camera.facing);
    let too_small = rng.chance(family.zone_too_small);
    let (mut back, mut front, half_width) = if too_small {
        (
            rng.range(0.0, 0.8),
            rng.range(0.0, 0.6),
            rng.range(0.25, 0.6),
        )
    } else {
        (
            draw(rng, family.zone_back_m),
            draw(rng, family.zone_front_m),
            draw(rng, family.zone_half_width_m),
        )
    };
    // "Back" is towards the queue (-y), whichever way the camera looks; keep every corner at
    // least 1.5 m in front of the lens.
    let limit = (camera.position[1] - plate[1]).abs() - 1.5;
    match camera.facing {
        Facing::Front => front = front.min(limit.max(0.0)),
        Facing::Rear => back = back.min(limit.max(0.0)),
    }
    let shift_x = if too_small { rng.normal() * 0.3 } else { 0.0 };
    let corners = [
        [plate[0] - half_width + shift_x, plate[1] - back],
        [plate[0] + half_width + shift_x, plate[1] - back],
        [plate[0] + half_width + shift_x, plate[1] + front],
        [plate[0] - half_width + shift_x, plate[1] + front],
    ];
    let mut points: Vec<(f64, f64)> = corners
        .iter()
        .map(|&[x, y]| {
            camera
                .project([x, y, plate[2]])
                .map(|(u, v, _)| (u, v))
                .unwrap_or((0.5, 1.0))
        })
        .collect();
    // A zone's size in the image decides how far a hand's slip goes.
    let (min_x, max_x, min_y, max_y) = points.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    let size = ((max_x - min_x) + (max_y - min_y)).clamp(0.02, 1.0) / 2.0;
    let jitter = draw(rng, family.zone_jitter) * size;
    // Extra points along edges (4-6 points in all).
    let extra = rng.below(3);
    for _ in 0..extra {
        let edge = rng.below(points.len());
        let (a, b) = (points[edge], points[(edge + 1) % points.len()]);
        let k = rng.range(0.3, 0.7);
        points.insert(edge + 1, (a.0 + (b.0 - a.0) * k, a.1 + (b.1 - a.1) * k));
    }
    let polygon = points
        .into_iter()
        .map(|(x, y)| {
            [
                (x + rng.normal() * jitter).clamp(0.0, 1.0) as f32,
                (y + rng.normal() * jitter).clamp(0.0, 1.0) as f32,
            ]
        })
        .collect();
    DrawnZone {
        camera: c,
        bay,
        polygon,
        too_small,
    }
}
