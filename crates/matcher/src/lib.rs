//! Which car was at the pump: fuelling-point zones, plate sightings, and the sale-to-plate matcher.
//! Pure logic: time comes in with the events, so the same events always give the same verdicts.

mod layout;
mod matcher;

pub use layout::{FpLayout, Layout, LayoutError, Zone};
pub use matcher::{MatchedSale, Matcher, MatcherConfig};
