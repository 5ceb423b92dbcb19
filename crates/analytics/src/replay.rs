//! Replays a recorded trace through the matcher and the analytics together, as the station loop
//! runs them: the clock is the newest `t` seen; at each new `t` the matcher's decided sales go to
//! the analytics, then the analytics are polled. Same trace, same events.

use std::io::BufRead;

use forecourt_events::UnixMillis;
use matcher::{Layout, Matcher, MatcherConfig, ReplayError, TraceReader, TraceRecord};

use crate::{Analytics, AnalyticsConfig, AnalyticsEvent};

/// Every analytics event of `trace`, in the order the live agent would append them. At the end
/// the matcher decides what is pending and every visit and hour is closed.
pub fn replay_analytics(
    trace: impl BufRead,
    matcher_config: &MatcherConfig,
    config: AnalyticsConfig,
    is_well_formed: fn(&str) -> bool,
) -> Result<Vec<AnalyticsEvent>, ReplayError> {
    let (layout, mut reader) = TraceReader::open(trace)?;
    let mut matcher = Matcher::new(layout.clone(), matcher_config.clone(), is_well_formed);
    let mut analytics = Analytics::new(layout, config, is_well_formed);
    let mut events = Vec::new();
    let mut clock = UnixMillis::MIN;
    let step = |now: UnixMillis,
                matcher: &mut Matcher,
                analytics: &mut Analytics,
                events: &mut Vec<AnalyticsEvent>| {
        for m in matcher.poll(now) {
            analytics.observe_matched(&m);
        }
        events.extend(analytics.poll(now));
    };
    while let Some(record) = reader.next_record()? {
        let Some(t) = record.time() else {
            return Err(ReplayError::UntimedLayout {
                line: reader.line_number(),
            });
        };
        if t > clock {
            clock = t;
            step(clock, &mut matcher, &mut analytics, &mut events);
        }
        if let Some(frame) = record.to_frame() {
            matcher.observe_frame(&frame);
            analytics.observe_frame(&frame);
            // Arrivals go out at once, as live.
            events.extend(analytics.poll(clock));
        } else if let TraceRecord::Layout { fps, .. } = record {
            let layout = Layout { fps };
            matcher.set_layout(layout.clone());
            analytics.set_layout(layout);
        } else if let Some(event) = record.to_dispenser() {
            matcher.observe_dispenser(&event);
            analytics.observe_dispenser(&event);
        }
    }
    step(UnixMillis::MAX, &mut matcher, &mut analytics, &mut events);
    Ok(events)
}
